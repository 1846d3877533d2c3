"""ASGI middleware in front of LitServe for POST /predict, /embed and /decode: body size and a
readable body, so that bad bodies get their 4xx before they reach a worker; /embed and /decode go
to the /predict worker as its modes (one model worker serves all three, its models loaded once).
POST /track gets the size check with the video limit, and TrackRequestCheck.

The guard also watches the connection of the requests whose work can be cancelled (/track, and
/predict mode=everything or format=geojson): it gives each a token (cancel.py) and, when the client leaves before
its answer is complete, raises the token's flag, which the worker looks at before each frame or
point batch. LitServe itself never tells a worker."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

from lang_sam.errors import InvalidOptionError, LangSAMError
from lang_sam.interfaces.server.api import PREDICT_PATH
from lang_sam.interfaces.server.cancel import CANCEL_FIELD, ServerFiles
from lang_sam.interfaces.server.track import TRACK_PATH
from lang_sam.interfaces.server.validation import DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_MAX_VIDEO_BYTES

FORM_URLENCODED = "application/x-www-form-urlencoded"  # LitServe reads it as a form too (fields only, no file)
MODE_PATHS = {"/embed": "embed", "/decode": "decode"}  # path -> the /predict mode it is


class RequestGuard:
    """ASGI middleware for POST /predict: bounds the body size (413) and answers 400/415 for bodies
    that LitServe could not parse, then hands the body on unchanged.

    LitServe hands a multipart upload to its worker as starlette's FormData (it keeps uploaded files
    in memory for that), so the file reaches the model as the bytes sent, never re-encoded."""

    def __init__(self, app, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, max_video_bytes: int = DEFAULT_MAX_VIDEO_BYTES,
                 check_track: Callable[[object], None] | None = None, files: ServerFiles | None = None) -> None:
        """check_track: raises the LangSAMError of a /track form the server cannot take (TrackRequestCheck);
        files: where the cancel flags of requests whose client left go (None: nothing is cancelled)."""
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_video_bytes = max_video_bytes
        self.check_track = check_track
        self.files = files

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in (PREDICT_PATH, TRACK_PATH, *MODE_PATHS):
            await self.app(scope, receive, send)
            return
        video = scope["path"] == TRACK_PATH
        limit = self.max_video_bytes if video else self.max_upload_bytes
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _send_error(send, 413, _too_large(limit, "video" if video else "image"))
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _send_error(send, 413, _too_large(limit, "video" if video else "image"))
                return
            if not message.get("more_body", False):
                break
        body = bytes(body)
        content_type = headers.get("content-type", "")
        if video:  # checked here: a streamed answer has sent its 200 before a worker reads the request
            try:
                await self._check_track(scope, content_type, body)
            except _Unreadable as error:
                await _send_error(send, error.status, error.detail)
                return
            await self._run_cancellable(scope, content_type, body, receive, send)
            return
        try:
            mode_given, format_given = await _check_body(scope, content_type, body)
            mode = MODE_PATHS.get(scope["path"])
            if mode is not None:  # the /predict worker, told the mode the path names
                if mode_given not in (None, "", mode):
                    raise _Unreadable(400, f"POST {scope['path']} is mode {mode}; leave the mode field out.")
                body = _with_field(content_type, body, "mode", mode)
                scope = _with_body_length({**scope, "path": PREDICT_PATH, "raw_path": PREDICT_PATH.encode()}, body)
        except _Unreadable as error:
            await _send_error(send, error.status, error.detail)
            return
        if mode is None and (mode_given == "everything" or format_given == "geojson"):  # tile by tile or batch by batch
            await self._run_cancellable(scope, content_type, body, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _run_cancellable(self, scope, content_type: str, body: bytes, receive, send) -> None:
        """Hand the request on with a token of its own, and raise the token's flag if its client
        leaves before the answer is complete."""
        if self.files is None:
            await self.app(scope, _replay(body, receive), send)
            return
        files, token = self.files, self.files.new_token()
        body = _with_field(content_type, body, CANCEL_FIELD, token)
        connection = _WatchedConnection(body, receive, send, on_gone=lambda: files.cancel(token))
        watcher = asyncio.create_task(connection.watch())
        try:
            await self.app(_with_body_length(scope, body), connection.receive, connection.send)
        finally:
            watcher.cancel()


    async def _check_track(self, scope, content_type: str, body: bytes) -> None:
        if not content_type.startswith("multipart/form-data"):
            raise _Unreadable(415, 'POST /track takes multipart/form-data: the file field "video", "prompt" and options.')
        if self.check_track is None:
            return
        from starlette.requests import Request

        async def once():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, once).form()
        except Exception as error:  # noqa: BLE001 - starlette's parser raises several types
            raise _Unreadable(400, f"The form body could not be read ({error}).") from None
        try:
            await asyncio.to_thread(self.check_track, form)  # probes the video: off the event loop
        except LangSAMError as error:
            raise _Unreadable(422 if isinstance(error, InvalidOptionError) else 400, str(error)) from None
        finally:
            await form.close()


class _WatchedConnection:
    """receive and send of one request for the app behind the guard, with the client watched.

    receive gives the body the guard read, then waits for the client to leave; watch() reads the
    server's own receive meanwhile (LitServe's handlers do not read it while a worker computes),
    so a client that leaves before the answer's last byte calls on_gone at once."""

    def __init__(self, body: bytes, receive, send, on_gone: Callable[[], None]) -> None:
        self._body, self._receive, self._send, self._on_gone = body, receive, send, on_gone
        self._body_given = False
        self._left = asyncio.Event()
        self.complete = False

    async def watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            continue  # the body was read whole: nothing else is expected before the end
        self._left.set()
        if not self.complete:  # uvicorn also says disconnect once the answer is complete
            self._on_gone()

    async def receive(self) -> dict:
        if not self._body_given:
            self._body_given = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        await self._left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.complete = True
        try:
            await self._send(message)
        except OSError:  # ASGI 2.4 servers raise here for a client gone
            if not self.complete:
                self._on_gone()
            raise


def _with_body_length(scope, body: bytes) -> dict:
    """scope with its content-length header set to body's length (the guard changed the body)."""
    return {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
            + [(b"content-length", str(len(body)).encode())]}


def _replay(body: bytes, receive):
    """receive() that gives the body as the client sent it (LitServe parses it once more, never
    re-encoded), then the connection's own messages."""
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _too_large(limit: int, what: str) -> str:
    return f"The request is larger than the limit of {limit} bytes; send a smaller {what}."


class _Unreadable(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


async def _check_body(scope, content_type: str, body: bytes) -> tuple[str | None, str | None]:
    """Raise _Unreadable unless LitServe's own parsing (starlette's form(), json.loads) will read
    body; return its mode and format fields (None where absent or not text)."""
    if content_type.startswith(("multipart/form-data", FORM_URLENCODED)):
        from starlette.requests import Request

        async def once():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, once).form()
        except Exception as error:  # noqa: BLE001 - starlette's parser raises several types
            raise _Unreadable(400, f"The form body could not be read ({error}).") from None
        fields = _text_fields(form)
        await form.close()
        return fields
    if content_type.startswith("application/json") or not content_type:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as error:  # also numbers of 5,000 digits, deep nesting
            raise _Unreadable(400, f"The body is not valid JSON, or nests or counts too deep to read ({error}).") from None
        if not isinstance(payload, dict):
            raise _Unreadable(400, "The JSON body must be an object with the fields image, prompt, ...")
        return _text_fields(payload)
    raise _Unreadable(415, f"Unsupported content type {content_type!r}; send multipart/form-data, {FORM_URLENCODED} or application/json.")


def _text_fields(payload) -> tuple[str | None, str | None]:
    """A form's or JSON object's mode and format fields, each None unless it is text."""
    values = (payload.get("mode"), payload.get("format"))
    return tuple(value if isinstance(value, str) else None for value in values)


def _with_field(content_type: str, body: bytes, name: str, value: str) -> bytes:
    """The body with the field name=value (plain ASCII, set by the guard) added last, where it wins
    over one the client sent: JSON (small for /decode; a base64 image is copied once), multipart
    (one part inserted before the closing boundary, the rest as sent) or a urlencoded form (one
    pair appended)."""
    if content_type.startswith(FORM_URLENCODED):
        return body + (b"&" if body else b"") + f"{name}={value}".encode()
    if content_type.startswith("multipart/form-data"):
        found = re.search(r'boundary="?([^";]+)"?', content_type)
        closing = body.rfind(b"--" + found.group(1).encode("latin-1") + b"--") if found else -1
        if closing < 0:
            raise _Unreadable(400, "The multipart body has no closing boundary.")
        part = (b"--" + found.group(1).encode("latin-1") + f'\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                + value.encode() + b"\r\n")
        return body[:closing] + part + body[closing:]
    payload = json.loads(body)
    payload[name] = value
    return json.dumps(payload).encode()


async def _send_error(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
