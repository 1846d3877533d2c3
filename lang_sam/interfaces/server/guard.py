"""ASGI middleware in front of LitServe for POST /predict: body size, content type, and one JSON
object per request, so that unreadable bodies get their 4xx before they reach a worker."""

from __future__ import annotations

import base64
import json
from typing import Any

from lang_sam.interfaces.server.api import PREDICT_PATH
from lang_sam.interfaces.server.validation import DEFAULT_MAX_UPLOAD_BYTES


class RequestGuard:
    """ASGI middleware for POST /predict: bounds the body size (413), and turns multipart uploads
    and JSON into one JSON object for LitServe, answering 400/415 for bodies it cannot read."""

    def __init__(self, app, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PREDICT_PATH:
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_upload_bytes:
            await _send_error(send, 413, self._too_large())
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_upload_bytes:
                await _send_error(send, 413, self._too_large())
                return
            if not message.get("more_body", False):
                break
        try:
            payload = await _read_payload(scope, headers.get("content-type", ""), bytes(body))
        except _Unreadable as error:
            await _send_error(send, error.status, error.detail)
            return
        encoded = json.dumps(payload).encode()
        scope = dict(scope)
        scope["headers"] = [
            (key, value) for key, value in scope["headers"] if key.lower() not in (b"content-type", b"content-length")
        ] + [(b"content-type", b"application/json"), (b"content-length", str(len(encoded)).encode())]
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": encoded, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"The request is larger than the limit of {self.max_upload_bytes} bytes; send a smaller image."


class _Unreadable(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


async def _read_payload(scope, content_type: str, body: bytes) -> dict[str, Any]:
    if content_type.startswith("multipart/form-data"):
        from starlette.requests import Request

        async def once():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, once).form()
        except Exception as error:  # noqa: BLE001 - starlette's parser raises several types
            raise _Unreadable(400, f"The multipart body could not be read ({error}).") from None
        payload: dict[str, Any] = {}
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                payload[key] = base64.b64encode(await value.read()).decode("ascii")
            else:
                payload[key] = value
        await form.close()
        return payload
    if content_type.startswith("application/json") or not content_type:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as error:  # also numbers of 5,000 digits, deep nesting
            raise _Unreadable(400, f"The body is not valid JSON, or nests or counts too deep to read ({error}).") from None
        if not isinstance(payload, dict):
            raise _Unreadable(400, "The JSON body must be an object with the fields image, prompt, ...")
        return payload
    raise _Unreadable(415, f"Unsupported content type {content_type!r}; send multipart/form-data or application/json.")


async def _send_error(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
