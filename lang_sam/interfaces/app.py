"""The Gradio web app: an image and a text prompt in; the labelled drawing, a table and the JSON out.

The app draws and tabulates; the predictions come from a backend: a ModelPool in this process
(``lang-sam app``, ``python app.py``) or the LitServe server it is mounted on (``lang-sam serve``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np

from lang_sam.drawing import draw_image
from lang_sam.errors import LangSAMError
from lang_sam.interfaces.models import ModelPool
from lang_sam.io.images import load_image
from lang_sam.results import LangSAMResult
from lang_sam.registry import sam_names
from lang_sam.settings import Settings

ASSETS = Path(__file__).resolve().parents[2] / "assets"
EXAMPLES = [("astronaut.jpg", "person, flag"), ("chelsea.jpg", "cat"), ("coffee.jpg", "cup, saucer, spoon")]
TABLE_HEADERS = ["label", "score", "mask score", "box (x0, y0, x1, y1)"]

# (image file, its decoded pixels, prompt, sam_type, options, progress) -> (result, "model in use",
# result as JSON). options: LangSAM.predict's box_threshold, text_threshold, nms_iou_threshold and
# multimask_output. The JSON is the download: a backend that received it (the server) hands it on
# as it came, so the masks are not encoded to RLE again.
Backend = Callable[[str, np.ndarray, str, str, dict, Callable], tuple[LangSAMResult, str, dict]]


def uploaded_image(**options) -> gr.Image:
    """An image input that hands the handler the uploaded file itself: lang-sam's reader decodes it
    (EXIF orientation, 16-bit, CMYK, clear errors for broken files) instead of Gradio, which fails
    on a broken file before the handler can explain, and re-encodes good ones. (Set on the instance:
    a gr.Image subclass would make Gradio write a .pyi file next to this module.)"""
    component = gr.Image(type="filepath", **options)
    component.preprocess = lambda payload: None if payload is None else payload.path
    return component


def local_backend(pool: ModelPool) -> Backend:
    """Predict with models loaded in this process; a first use of a SAM size shows its loading."""

    def predict(image_path, image, prompt, sam_type, options, progress):
        if sam_type not in pool.loaded_sam_types:
            progress(0.0, desc=f"Loading SAM {sam_type} (downloaded on first use)")
            pool.get(sam_type)
        progress(0.5, desc="Segmenting")
        result = pool.predict(image, prompt, sam_type, **options)
        return result, pool.describe(sam_type), result.to_json()

    return predict


def build_app(backend: Backend, default_sam_type: str = "vit_h", sam_types: list[str] | None = None):
    """The Blocks app; its submit button is also the API endpoint "/predict" (gradio_client).

    sam_types: the dropdown's choices (default: the official sizes and $LANG_SAM_CHECKPOINTS' own files)."""
    downloads = DownloadFolder()
    def segment(image_path, prompt, sam_type, box_threshold, text_threshold, nms_iou_threshold, multimask_output,
                progress=gr.Progress(track_tqdm=True)):
        if image_path is None:
            raise gr.Error("Upload an image first.")
        if not prompt or not prompt.strip():
            raise gr.Error('Type what to find, e.g. "car, wheel".')
        options = {
            "box_threshold": box_threshold, "text_threshold": text_threshold, "multimask_output": bool(multimask_output),
            "nms_iou_threshold": None if nms_iou_threshold >= 1.0 else nms_iou_threshold,  # 1: no box is dropped
        }
        try:
            image = load_image(image_path)
            result, model, exported = backend(image_path, image, prompt, sam_type, options, progress)
        except LangSAMError as error:
            raise gr.Error(str(error)) from None
        return draw_image(image, result), detection_rows(result), downloads.write(exported), status_line(result, model)

    with gr.Blocks(title="lang-sam") as app:
        gr.Markdown("# lang-sam\nName what to segment, separated by commas: Grounding DINO finds boxes, SAM draws masks.")
        with gr.Row():
            with gr.Column():
                sam_type = gr.Dropdown(sam_types or sam_names(), value=default_sam_type, label="SAM model", elem_id="sam-type")
                box_threshold = gr.Slider(0.0, 1.0, value=0.3, step=0.01, label="Box threshold")
                text_threshold = gr.Slider(0.0, 1.0, value=0.25, step=0.01, label="Text threshold")
                with gr.Accordion("More options", open=False):
                    nms_iou_threshold = gr.Slider(
                        0.0, 1.0, value=1.0, step=0.01, label="NMS IoU threshold (drops boxes of a class overlapping "
                        "a better one by more than this; 1 = keep all)", elem_id="nms-iou-threshold")
                    multimask_output = gr.Checkbox(
                        value=False, label="Multimask: SAM proposes three masks per box, keep the best by predicted IoU",
                        elem_id="multimask")
                image = uploaded_image(label="Image", elem_id="input-image")
                prompt = gr.Textbox(label="Text prompt", placeholder="car, wheel", elem_id="prompt")
                submit = gr.Button("Segment", variant="primary", elem_id="submit")
            with gr.Column():
                drawing = gr.Image(label="Result", type="numpy", format="png", interactive=False, elem_id="drawing")
                status = gr.Markdown(elem_id="status")
                table = gr.Dataframe(headers=TABLE_HEADERS, label="Detections", interactive=False, elem_id="detections")
                download = gr.File(label="Detections as JSON (COCO RLE masks)", elem_id="download")
        examples = [[str(ASSETS / name), text] for name, text in EXAMPLES if (ASSETS / name).is_file()]
        if examples:
            gr.Examples(examples, inputs=[image, prompt])
        inputs = [image, prompt, sam_type, box_threshold, text_threshold, nms_iou_threshold, multimask_output]
        outputs = [drawing, table, download, status]
        submit.click(segment, inputs=inputs, outputs=outputs, api_name="predict")
        prompt.submit(segment, inputs=inputs, outputs=outputs, api_name=False)
    return app


def detection_rows(result: LangSAMResult) -> list[list]:
    return [
        [label, round(float(score), 3), round(float(mask_score), 3), ", ".join(f"{v:.1f}" for v in box)]
        for label, score, mask_score, box in zip(result.phrases, result.logits, result.mask_scores, result.boxes)
    ]


def status_line(result: LangSAMResult, model: str) -> str:
    count = result.num_detections
    found = f"{count} detection{'s' if count != 1 else ''}" if count else "Nothing found"
    return f"{found}. Model: {model}."


class DownloadFolder:
    """The JSON downloads of one app: a temporary folder removed when the app's process ends, that
    keeps only the newest `keep` files (Gradio copies each into its own cache when it answers), so
    a long-running app does not fill the disk."""

    def __init__(self, keep: int = 64) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="lang-sam-app-")
        self.path = Path(self._folder.name)
        self.keep = keep

    def write(self, exported: dict) -> str:
        """Write one answer's JSON (LangSAMResult.to_json) as a download; return its path."""
        folder = self.path / uuid.uuid4().hex  # one folder per answer: the download keeps its name
        folder.mkdir()
        path = folder / "detections.json"
        path.write_text(json.dumps(exported, indent=1))
        answers = sorted(self.path.iterdir(), key=lambda entry: entry.stat().st_mtime_ns)
        for old in answers[: max(0, len(answers) - self.keep)]:
            shutil.rmtree(old, ignore_errors=True)
        return str(path)


def launch(settings: Settings, host: str | None = None, port: int | None = None, share: bool = False) -> None:
    """Build the app on a local ModelPool and serve it until interrupted."""
    pool = ModelPool(settings)
    app = build_app(local_backend(pool), pool.settings.sam_type, pool.sam_types)
    app.queue().launch(server_name=host, server_port=port, share=share or None)  # None: $GRADIO_SHARE decides
