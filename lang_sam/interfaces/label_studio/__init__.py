"""The Label Studio ML backend: ``lang-sam label-studio``.

Label Studio (1.23) connects to it as a model (Settings > Model > Connect Model, URL
http://HOST:9090) and calls GET /health, POST /setup (the project's labeling config), POST /predict
and POST /webhook. /predict pre-annotates tasks: the project's labels are the text prompt (each
label's ``hint``, ``predicted_values`` or a --label-prompts mapping may give other words), and the
config's BrushLabels (Label Studio's brush RLE), PolygonLabels and RectangleLabels get one region
per object found, each carrying one of the project's labels, its score and the model version
(model names and weights hash). With an interactive context (Auto-Annotation: KeyPointLabels clicks,
positive or negative, and RectangleLabels boxes) it answers the mask of those prompts at once,
encoding each image once and decoding every later click against its cached embedding. With SAM 3
the text goes to SAM 3 and no detector runs.

Images are read where Label Studio keeps them: local paths, http(s) URLs, Label Studio's own
/data/upload and /data/local-files URLs (with --label-studio-url and --label-studio-api-key, or
LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, else what /setup sends) and cloud URIs (s3://, gs://,
azure-blob://) that Label Studio presigns.

Modules: config.py (the labeling config), results.py (Label Studio's result JSON to and from
Detections and clicks), files.py (task images), backend.py (the answers), app.py (the routes).
"""

from __future__ import annotations

import os

from lang_sam.interfaces.label_studio.backend import LabelStudioBackend, model_version
from lang_sam.interfaces.label_studio.config import read_label_prompts
from lang_sam.interfaces.label_studio.files import LabelStudioAccess
from lang_sam.settings import Settings
from lang_sam.vocabulary import Thresholds

__all__ = ["LabelStudioBackend", "build_backend"]


def build_backend(settings: Settings, thresholds: Thresholds | None = None, label_prompts: str | None = None,
                  url: str | None = None, api_key: str | None = None) -> LabelStudioBackend:
    """The backend of the pipeline settings name (loaded now, so /health answers only when ready).

    label_prompts: the mapping option (JSON or a .json file); url, api_key: Label Studio's address
    and token (default LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY; else those /setup sends)."""
    from lang_sam.pipeline import LangSAM

    prompts = read_label_prompts(label_prompts)  # checked before the models load
    url = url or os.environ.get("LABEL_STUDIO_URL")
    api_key = api_key or os.environ.get("LABEL_STUDIO_API_KEY")
    access = LabelStudioAccess(url.rstrip("/"), api_key) if url and api_key else None
    return LabelStudioBackend(LangSAM.from_settings(settings), model_version(settings), thresholds or Thresholds(), prompts, access)
