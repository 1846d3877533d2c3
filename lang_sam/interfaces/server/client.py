"""The app's backend when it is mounted on the server: it asks /predict over HTTP, so that the app
and the API share the workers, the models and the batching."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from lang_sam.errors import LangSAMError


class RemoteBackend:
    """An app backend that asks the server at url, so the mounted app shares its models and batching.
    semantic_models: those the server names everything-masks with (its --semantic-models)."""

    tracks_video = False  # the server streams /track as JSON lines; the mounted app offers no video tab

    def __init__(self, url: str, timeout: float, semantic_models: list[str] | None = None) -> None:
        self.url, self.timeout = url, timeout
        self.semantic_models = list(semantic_models or ())

    def _post(self, image_path: str, fields: dict, progress) -> dict:
        progress(0.2, desc="Waiting for the server")
        fields = {key: _field(value) for key, value in fields.items() if value is not None}
        upload = Path(image_path).read_bytes()  # the file as uploaded: the server decodes it as the app did
        response = httpx.post(self.url, files={"image": (Path(image_path).name, upload)}, data=fields, timeout=self.timeout)
        if response.status_code != 200:
            raise LangSAMError(_detail(response))
        return response.json()

    def text(self, image_path, image, prompt, sam_type, options, progress):
        payload = self._post(image_path, {"prompt": prompt, "sam_type": sam_type, "include_drawing": True, **options}, progress)
        exported = {"image": payload["image"], "detections": payload["detections"]}
        return _drawing(payload), payload["model"], exported

    def everything(self, image_path, image, sam_type, options, progress):
        fields = {"mode": "everything", "sam_type": sam_type, "include_drawing": True, **options}
        payload = self._post(image_path, fields, progress)
        return _drawing(payload), payload["model"], {"image": payload["image"], "masks": payload["masks"]}


def _field(value) -> str:
    """A multipart field as the server reads it: true/false, "x,y;x,y" for points and boxes, "1,0" for labels."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ";".join(",".join(str(v) for v in item) if isinstance(item, list) else str(item) for item in value) \
            if value and isinstance(value[0], list) else ",".join(str(v) for v in value)
    return str(value)


def _drawing(payload: dict) -> np.ndarray:
    """The server's drawing, sent as base64 PNG beside the JSON (include_drawing)."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload["drawing"]))).convert("RGB"))


def _detail(response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text
