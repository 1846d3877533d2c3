"""The backend's HTTP routes, as Label Studio 1.23 calls them (its ml/api_connector.py): GET /health
(and /), POST /setup, POST /predict, POST /webhook; a small Starlette app that uvicorn runs.

An answer that cannot be given is JSON {"error": why} with a 4xx (the request: an unknown config,
an unreadable image) or a 500 (the model failed), and a log line; the backend keeps serving."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lang_sam.errors import InvalidImageError, InvalidOptionError, InvalidPromptError, LangSAMError
from lang_sam.interfaces.label_studio.backend import LOGGER, LabelStudioBackend


def build_app(backend: LabelStudioBackend) -> Starlette:
    """The ASGI app answering Label Studio for backend."""

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "UP", "model_class": "lang-sam", "model_version": backend.model_version})

    async def webhook(request: Request) -> JSONResponse:
        # Label Studio sends annotation events here; lang-sam does not train on them.
        return JSONResponse({"status": "ok", "detail": "lang-sam does not train on Label Studio events."})

    return Starlette(routes=[
        Route("/", health, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/setup", _json_route(backend.setup), methods=["POST"]),
        Route("/predict", _json_route(backend.predict), methods=["POST"]),
        Route("/webhook", webhook, methods=["POST"]),
    ])


def _json_route(answer: Callable[[dict], dict]) -> Callable[[Request], Awaitable[JSONResponse]]:
    """A route that reads a JSON object, answers it in a worker thread (the models block), and
    turns every failure into a JSON error answer."""

    async def route(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "The request body is not JSON.")
        if not isinstance(body, dict):
            return _error(400, "The request body is not a JSON object.")
        try:
            return JSONResponse(await asyncio.to_thread(_no_stop_iteration, answer, body))
        except (InvalidImageError, InvalidPromptError, InvalidOptionError) as error:
            return _error(422 if isinstance(error, InvalidOptionError) else 400, str(error))
        except LangSAMError as error:
            return _error(503, str(error))
        except Exception as error:  # noqa: BLE001 - a model failure answers this request only
            LOGGER.exception("lang-sam: %s failed", request.url.path)
            return _error(500, f"The model failed on this request ({type(error).__name__}: {error}).")

    return route


def _no_stop_iteration(answer: Callable[[dict], dict], body: dict) -> dict:
    """answer(body), with a StopIteration turned into a RuntimeError: raised into asyncio's future
    it would never complete, and the request would hang."""
    try:
        return answer(body)
    except StopIteration as error:
        raise RuntimeError(f"StopIteration {error}") from error


def _error(status: int, message: str) -> JSONResponse:
    LOGGER.warning("lang-sam: %d %s", status, message)
    return JSONResponse({"error": message, "detail": message}, status_code=status)


def serve(backend: LabelStudioBackend, host: str = "127.0.0.1", port: int = 9090) -> None:
    """Run the backend with uvicorn until interrupted."""
    import uvicorn

    if not LOGGER.handlers:
        LOGGER.addHandler(logging.StreamHandler(sys.stderr))
        LOGGER.setLevel(logging.INFO)
    uvicorn.run(build_app(backend), host=host, port=port, log_level="info")
