"""The app's backend when it is mounted on the server: it asks /predict over HTTP, so that the app
and the API share the workers, the models and the batching."""

from __future__ import annotations

from pathlib import Path

import httpx

from lang_sam.errors import LangSAMError
from lang_sam.results import LangSAMResult


def remote_backend(url: str, timeout: float):
    """An app backend that asks the server at url, so the mounted app shares its models and batching."""
    def predict(image_path, image, prompt, sam_type, options, progress):
        progress(0.2, desc="Waiting for the server")
        fields = {"prompt": prompt, "sam_type": sam_type, **{k: str(v).lower() for k, v in options.items() if v is not None}}
        upload = Path(image_path).read_bytes()  # the file as uploaded: the server decodes it as the app did
        response = httpx.post(url, files={"image": (Path(image_path).name, upload)}, data=fields, timeout=timeout)
        if response.status_code != 200:
            raise LangSAMError(_detail(response))
        payload = response.json()
        exported = {"image": payload["image"], "detections": payload["detections"]}
        return LangSAMResult.from_json(payload), payload["model"], exported

    return predict


def _detail(response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text
