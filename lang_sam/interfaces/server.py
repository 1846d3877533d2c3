"""The LitServe server: ``lang-sam serve``.

``POST /predict`` takes an image (a multipart file field ``image``, or JSON with ``image`` as base64)
and the fields ``prompt``, ``box_threshold``, ``text_threshold``, ``sam_type``, ``max_detections``,
``nms_iou_threshold``, ``multimask_output`` and ``format`` ("json", the default, or "png" for the labelled drawing). JSON answers hold the image
size, the model, and per detection: label, score, mask score, box and COCO RLE mask.

Requests from different clients are batched (LitServe batching) and each batch runs one detector
pass per group of requests with the same options. A request guard in front of LitServe turns every
accepted body into one JSON object, so that bad bodies get a 4xx before they reach a worker.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
import signal
import sys
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr
import httpx
import litserve as ls
import numpy as np
from fastapi.responses import JSONResponse, Response
from PIL import Image

from lang_sam.drawing import draw_image
from lang_sam.errors import InvalidImageError, InvalidOptionError, InvalidPromptError, LangSAMError
from lang_sam.interfaces.app import build_app
from lang_sam.interfaces.models import ModelPool
from lang_sam.io.images import load_image
from lang_sam.pipeline import LangSAMResult
from lang_sam.registry import DEFAULT_SAM, check_sam_type, sam_names
from lang_sam.settings import Settings

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
MAX_PROMPT_CHARACTERS = 2_000
PREDICT_PATH = "/predict"
LOGGER = logging.getLogger("lang_sam.server")


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


@dataclass
class PredictRequest:
    image: np.ndarray
    prompt: str
    sam_type: str
    box_threshold: float
    text_threshold: float
    max_detections: int | None
    response_format: str
    nms_iou_threshold: float | None = None
    multimask_output: bool = False

    @property
    def options(self) -> tuple:
        """Requests with equal options share one batched predict call."""
        return (self.sam_type, self.box_threshold, self.text_threshold, self.max_detections, self.nms_iou_threshold,
                self.multimask_output)


@dataclass
class Rejected:
    """A request answered with an error status instead of a prediction."""

    status: int
    detail: str


def parse_request(payload: dict[str, Any], default_sam_type: str, limits: Limits, checkpoint_dir: str | None = None) -> PredictRequest:
    """Check a request's fields; raise the project's errors with a message that says what to send."""
    image_field = payload.get("image")
    if not isinstance(image_field, str):
        raise InvalidImageError('Send the image as a multipart file field "image", or as base64 text in JSON "image".')
    if not image_field:
        raise InvalidImageError("The uploaded image is empty (0 bytes).")
    try:
        data = base64.b64decode(image_field.split(",", 1)[-1] if image_field.startswith("data:") else image_field, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImageError('The "image" field is not valid base64.') from None
    prompt = payload.get("prompt")
    legacy = prompt is None and "text_prompt" in payload  # lang-segment-anything v0.2.x's client
    if legacy:
        prompt = payload["text_prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidPromptError('Send a text "prompt" naming what to segment, e.g. "car, wheel".')
    if len(prompt) > MAX_PROMPT_CHARACTERS:
        raise InvalidPromptError(f"The prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARACTERS}.")
    sam_type = check_sam_type(payload.get("sam_type") or default_sam_type, checkpoint_dir)
    response_format = str(payload.get("format") or ("png" if legacy else "json")).lower()
    if response_format not in ("json", "png"):
        raise InvalidOptionError(f'Unknown format {response_format!r}; use "json" or "png".')
    max_detections = payload.get("max_detections")
    if max_detections in (None, ""):
        max_detections = None
    else:
        max_detections = _number(max_detections, "max_detections", integer=True)
        if max_detections < 0:
            raise InvalidOptionError(f"max_detections must be >= 0, got {max_detections}.")
    return PredictRequest(
        image=load_image(data, max_pixels=limits.max_image_pixels),
        prompt=prompt,
        sam_type=sam_type,
        box_threshold=_threshold(payload, "box_threshold", 0.3),
        text_threshold=_threshold(payload, "text_threshold", 0.25),
        max_detections=max_detections,
        response_format=response_format,
        nms_iou_threshold=_threshold(payload, "nms_iou_threshold", None),
        multimask_output=_flag(payload, "multimask_output"),
    )


def _flag(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name)
    if value in (None, "", False, "false", "False", "0", 0):
        return False
    if value in (True, "true", "True", "1", 1):
        return True
    raise InvalidOptionError(f"{name} must be true or false, got {value!r}.")


def _threshold(payload: dict[str, Any], name: str, default: float | None) -> float | None:
    value = payload.get(name)
    if value in (None, ""):
        return default
    number = _number(value, name)
    if not 0.0 <= number <= 1.0:
        raise InvalidOptionError(f"{name} must be between 0 and 1, got {value!r}.")
    return number


def _number(value: Any, name: str, integer: bool = False) -> float | int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if not math.isfinite(number) or (integer and number != int(number)):
            raise ValueError
    except (TypeError, ValueError):
        kind = "a whole number" if integer else "a number"
        raise InvalidOptionError(f"{name} must be {kind}, got {value!r}.") from None
    return int(number) if integer else number


def response_json(result: LangSAMResult, model: str) -> dict[str, Any]:
    exported = result.to_json()
    return {"image": exported["image"], "model": model, "detections": exported["detections"]}


class LangSAMAPI(ls.LitAPI):
    """Decode and check each request, predict a batch in groups, encode JSON or PNG."""

    def __init__(self, settings: Settings, limits: Limits, max_batch_size: int = 4, batch_timeout: float = 0.05):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path=PREDICT_PATH)
        self.settings = settings
        self.limits = limits

    def setup(self, device: str) -> None:
        self.pool = ModelPool(replace(self.settings, device=self.settings.device or device))
        self.pool.get()  # the default size is ready before /health says so
        if not LOGGER.handlers:  # a spawned worker process: log to its stderr, the server's log
            LOGGER.addHandler(logging.StreamHandler(sys.stderr))
            LOGGER.setLevel(logging.INFO)

    def decode_request(self, request) -> PredictRequest | Rejected:  # the JSON object the guard made
        try:
            return parse_request(request, self.pool.settings.sam_type, self.limits, self.pool.settings.checkpoint_dir)
        except LangSAMError as error:  # one bad request must not fail the others in its batch
            return Rejected(422 if isinstance(error, InvalidOptionError) else 400, str(error))
        except Exception as error:  # noqa: BLE001 - a body no check foresaw is still only its own 400
            return Rejected(400, f"The request could not be read ({type(error).__name__}: {error}).")

    def batch(self, inputs: list) -> list:
        return inputs

    def predict(self, inputs):
        if not isinstance(inputs, list):  # max_batch_size == 1: LitServe passes one input
            return predict_batch(self.pool, [inputs])[0]
        LOGGER.info("lang-sam: a batch of %d requests", len(inputs))
        return predict_batch(self.pool, inputs)

    def unbatch(self, outputs: list) -> list:
        return outputs

    def encode_response(self, output):
        if isinstance(output, Rejected):
            return JSONResponse({"detail": output.detail}, status_code=output.status)
        request, result, model = output
        if request.response_format == "png":
            buffer = io.BytesIO()
            Image.fromarray(draw_image(request.image, result)).save(buffer, format="PNG")
            return Response(buffer.getvalue(), media_type="image/png")
        return response_json(result, model)


def predict_batch(pool: ModelPool, inputs: list[PredictRequest | Rejected]) -> list:
    """One predict call per group of requests with equal options; a failing group is retried one by
    one, so that only the request at fault gets an error."""
    outputs: list = list(inputs)
    groups: dict[tuple, list[int]] = {}
    for index, item in enumerate(inputs):
        if isinstance(item, PredictRequest):
            groups.setdefault(item.options, []).append(index)
    for (sam_type, box_threshold, text_threshold, max_detections, nms_iou_threshold, multimask_output), indices in groups.items():
        requests = [inputs[i] for i in indices]

        def run(chosen: list[PredictRequest]) -> list[LangSAMResult]:
            return pool.predict(
                [r.image for r in chosen], [r.prompt for r in chosen], sam_type,
                box_threshold=box_threshold, text_threshold=text_threshold, max_detections=max_detections,
                nms_iou_threshold=nms_iou_threshold, multimask_output=multimask_output,
            )

        try:
            results = run(requests)
        except Exception:  # noqa: BLE001 - isolate the request at fault below
            results = None
        for position, (index, request) in enumerate(zip(indices, requests)):
            try:
                result = results[position] if results is not None else run([request])[0]
                outputs[index] = (request, result, pool.describe(sam_type))
            except LangSAMError as error:
                outputs[index] = Rejected(503 if _is_model_problem(error) else 400, str(error))
            except Exception as error:  # noqa: BLE001 - a model failure answers this request only
                outputs[index] = Rejected(500, f"The model failed on this request ({type(error).__name__}: {error}).")
    return outputs


def _is_model_problem(error: LangSAMError) -> bool:
    return not isinstance(error, (InvalidImageError, InvalidPromptError, InvalidOptionError))


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


def build_server(
    settings: Settings,
    limits: Limits = Limits(),
    max_batch_size: int = 4,
    batch_timeout: float = 0.05,
    workers_per_device: int = 1,
    timeout: float = 120.0,
    accelerator: str = "auto",
    devices: int | str = "auto",
):
    """A LitServer with the guard in front; the caller mounts the app if wanted, then runs it."""
    return ls.LitServer(
        LangSAMAPI(settings, limits, max_batch_size, batch_timeout),
        accelerator=accelerator,
        devices=devices,
        workers_per_device=workers_per_device,
        timeout=timeout,
        middlewares=[(RequestGuard, {"max_upload_bytes": limits.max_upload_bytes})],
    )


def remote_backend(url: str, timeout: float):
    """An app backend that asks the server at url, so the mounted app shares its models and batching."""
    def predict(image, prompt, sam_type, box_threshold, text_threshold, progress):
        progress(0.2, desc="Waiting for the server")
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        fields = {"prompt": prompt, "sam_type": sam_type, "box_threshold": box_threshold, "text_threshold": text_threshold}
        response = httpx.post(url, files={"image": ("image.png", buffer.getvalue(), "image/png")}, data=fields, timeout=timeout)
        if response.status_code != 200:
            raise LangSAMError(_detail(response))
        payload = response.json()
        return LangSAMResult.from_json(payload), payload["model"]

    return predict


def _detail(response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text


def serve(
    settings: Settings,
    limits: Limits = Limits(),
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch_size: int = 4,
    batch_timeout: float = 0.05,
    workers_per_device: int = 1,
    timeout: float = 120.0,
    with_app: bool = False,
) -> None:
    """Run the server until interrupted; call under ``if __name__ == "__main__"`` (workers are spawned)."""
    accelerator = "cpu" if (settings.device or "").startswith("cpu") else "auto"
    server = build_server(settings, limits, max_batch_size, batch_timeout, workers_per_device, timeout, accelerator)
    if with_app:
        backend = remote_backend(f"http://127.0.0.1:{port}{PREDICT_PATH}", timeout=timeout + 60)
        gr.mount_gradio_app(server.app, build_app(backend, settings.sam_type or DEFAULT_SAM, sam_names(settings.checkpoint_dir)).queue(), path="/app")
    # LitServe shuts its workers down on Ctrl+C but leaves them running on SIGTERM (kill, docker stop):
    # treat SIGTERM as Ctrl+C so that stopping the server never leaves a process behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server.run(host=host, port=port, generate_client_file=False)
