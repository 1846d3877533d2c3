"""GET /health: LitServe's readiness answer, with what the server runs added when it is ready."""

from __future__ import annotations

import json
from typing import Any


class HealthReport:
    """ASGI middleware for GET /health: while LitServe answers 503 (workers starting) its answer goes
    out unchanged; once it answers 200, the body becomes JSON: {"status": "ok", **report}."""

    def __init__(self, app, report: dict[str, Any]) -> None:
        self.app = app
        self.body = json.dumps({"status": "ok", **report}).encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/health":
            await self.app(scope, receive, send)
            return
        started: dict[str, Any] = {}

        async def report_when_ready(message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
                if message["status"] != 200:
                    await send(message)
            elif started.get("status") != 200:
                await send(message)
            elif not message.get("more_body", False):  # LitServe's "ok" ends: send the report instead
                headers = [(key, value) for key, value in started.get("headers", [])
                           if key.lower() not in (b"content-type", b"content-length")]
                await send({**started, "headers": headers + [
                    (b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]})
                await send({"type": "http.response.body", "body": self.body})

        await self.app(scope, receive, report_when_ready)
