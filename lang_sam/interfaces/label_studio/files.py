"""A task's image, wherever Label Studio keeps it: a local path, an http(s) URL, a file Label Studio
serves (``/data/upload/...``, ``/data/local-files/?d=...``) fetched with the access token, or a
cloud URI (``s3://``, ``gs://``, ``azure-blob://``) that Label Studio presigns for the task; the
URL kinds are resolved by label-studio-sdk (get_base64_content), nothing is written to disk."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lang_sam.errors import InvalidImageError
from lang_sam.io.images import load_image

WEB_PREFIXES = ("http://", "https://")
# What Label Studio serves or presigns: its uploads, local-files and storage URLs, cloud URIs.
LABEL_STUDIO_PREFIXES = ("/data/", "data/", "/upload", "upload/", "/storage-data/", "s3:", "gs:", "azure-blob:")


@dataclass
class LabelStudioAccess:
    """Where Label Studio runs and the token the backend reads its files with: a legacy API token
    (sent as ``Token``) or a personal access token (a JWT refresh token, exchanged for short-lived
    access tokens at api/token/refresh, as label-studio-sdk's client does)."""

    url: str
    token: str
    _access: tuple[str, float] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def request_token(self) -> str:
        """The token to send now: the legacy token as it is, else a fresh access token."""
        import jwt

        try:
            claims = jwt.decode(self.token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return self.token  # a legacy token
        if claims.get("token_type") != "refresh":
            return self.token
        with self._lock:
            if self._access is None or self._access[1] < time.time() + 30:
                self._access = self._refresh()
            return self._access[0]

    def _refresh(self) -> tuple[str, float]:
        import jwt
        from label_studio_sdk import LabelStudio

        try:
            access = LabelStudio(base_url=self.url, api_key=self.token).tokens.refresh(refresh=self.token).access
        except Exception as error:  # noqa: BLE001 - the SDK raises its ApiError and httpx's errors
            raise InvalidImageError(f"Label Studio at {self.url} refused the personal access token ({error}); "
                                    "give a current token (--label-studio-api-key or LABEL_STUDIO_API_KEY).") from None
        return access, float(jwt.decode(access, options={"verify_signature": False}).get("exp", 0))


def load_task_image(task: dict, image_key: str, access: LabelStudioAccess | None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the task's image at data[image_key], or the InvalidImageError that
    says which task and URL could not be read, and why."""
    data = task.get("data") if isinstance(task, dict) else None
    location = data.get(image_key) if isinstance(data, dict) else None
    if not isinstance(location, str) or not location:
        raise InvalidImageError(f"Task {_task_id(task)} has no image under data[{image_key!r}] (the labeling config's Image value).")
    if not location.startswith(WEB_PREFIXES + LABEL_STUDIO_PREFIXES) or Path(location).is_file():
        return _decoded(task, location, Path(location))  # a file on this machine
    from label_studio_sdk._extensions.label_studio_tools.core.utils.io import get_base64_content

    if location.startswith(LABEL_STUDIO_PREFIXES) and access is None:
        raise InvalidImageError(
            f"Task {_task_id(task)}'s image {location} is served by Label Studio: give the backend its URL and an access "
            "token (--label-studio-url and --label-studio-api-key, or LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)."
        )
    try:
        content = get_base64_content(location, hostname=access.url if access else None,
                                     access_token=access.request_token() if access else None, task_id=task.get("id"))
    except InvalidImageError:
        raise
    except Exception as error:  # noqa: BLE001 - requests, the SDK's own and OS errors all mean "not fetched"
        raise InvalidImageError(f"Task {_task_id(task)}'s image {location} could not be fetched ({type(error).__name__}: {error}).") from None
    return _decoded(task, location, base64.b64decode(content))


def _decoded(task: dict, location: str, image: Path | bytes) -> np.ndarray:
    try:
        return load_image(image)
    except InvalidImageError as error:
        raise InvalidImageError(f"Task {_task_id(task)}'s image {location}: {error}") from None


def _task_id(task: object) -> str:
    return str(task.get("id", "?")) if isinstance(task, dict) else "?"
