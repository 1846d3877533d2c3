"""The app's backend when it is mounted on the server: it asks /predict over HTTP, so that the app
and the API share the workers, the models and the batching."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from lang_sam.errors import LangSAMError
from lang_sam.pipeline import LangSAMResult


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
