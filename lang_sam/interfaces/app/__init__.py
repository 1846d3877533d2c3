"""The Gradio web app: an image and a text prompt in; the labelled drawing, a table and the JSON out.

The app draws and tabulates; the predictions come from a backend: a ModelPool in this process
(``lang-sam app``, ``python app.py``) or the LitServe server it is mounted on (``lang-sam serve``).
"""

from __future__ import annotations

import gradio as gr

from lang_sam.interfaces.app import clicks_tab, everything_tab, exemplars_tab, text_tab, video_tab
from lang_sam.interfaces.app.backend import Backend, LocalBackend
from lang_sam.interfaces.app.downloads import DownloadFolder
from lang_sam.interfaces.models import ModelPool
from lang_sam.registry import DETECTORS, UNIVERSAL_MODELS, sam_names
from lang_sam.settings import Settings


def build_app(backend: Backend, default_sam_type: str = "vit_h", sam_types: list[str] | None = None,
              detectors: list[str] | None = None, video_types: list[str] | None = None):
    """The Blocks app: a text-prompt tab (its submit button is also the API endpoint "/predict" for
    gradio_client), a clicks tab, a more-like-this tab (SAM 3's exemplar boxes, "/exemplars"), an
    everything tab ("/everything") and a video tab ("/track"), sharing the SAM dropdown.

    sam_types: the SAM dropdown's choices (default: every registry segmenter, SAM v1 first, and
    $LANG_SAM_CHECKPOINTS' own); detectors: the detector dropdown's, the default first (none or
    one: no dropdown); video_types: the video tab's models (SAM 2.1; the tab is offered when the
    backend tracks video)."""
    downloads = DownloadFolder()
    with gr.Blocks(title="lang-sam") as app:
        gr.Markdown("# lang-sam\nName what to segment, separated by commas: Grounding DINO finds boxes, SAM draws masks. "
                    "Or segment everything: SAM prompted with a grid of points.")
        with gr.Row():
            sam_type = gr.Dropdown(sam_types or sam_names(), value=default_sam_type, elem_id="sam-type",
                                   label="Segmenter (SAM v1, SAM 2.1, SAM-HQ; sam3 needs no detector)")
            detector = gr.Dropdown(detectors or [], value=(detectors or [None])[0], label="Detector", elem_id="detector",
                                   visible=len(detectors or []) > 1)
        text_tab.build(backend, downloads, sam_type, detector)
        clicks_tab.build(app, backend, downloads, sam_type)
        exemplars_tab.build(backend, downloads, sam_type)
        everything_tab.build(backend, downloads, sam_type)
        video_tab.build(backend, downloads, detector, video_types)
    return app


def launch(settings: Settings, host: str | None = None, port: int | None = None, share: bool = False) -> None:
    """Build the app on a local ModelPool and serve it until interrupted."""
    pool = ModelPool(settings, detectors=list(DETECTORS), semantic_models=list(UNIVERSAL_MODELS))
    app = build_app(LocalBackend(pool), pool.settings.sam_type, pool.sam_types, list(pool.detector_names), pool.video_types)
    app.queue().launch(server_name=host, server_port=port, share=share or None)  # None: $GRADIO_SHARE decides
