"""The app's text-prompt tab: an image and class names in; the labelled drawing, a table of the
detections and their JSON out. Its button is also the "/predict" API endpoint for gradio_client."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from lang_sam.errors import LangSAMError
from lang_sam.interfaces.app.backend import Backend
from lang_sam.interfaces.app.components import uploaded_image
from lang_sam.interfaces.app.downloads import DownloadFolder
from lang_sam.io.images import load_image
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD

ASSETS = Path(__file__).resolve().parents[3] / "assets"
EXAMPLES = [("astronaut.jpg", "person, flag"), ("chelsea.jpg", "cat"), ("coffee.jpg", "cup, saucer, spoon")]
TABLE_HEADERS = ["label", "score", "mask score", "box (x0, y0, x1, y1)"]


def build(backend: Backend, downloads: DownloadFolder, sam_type: gr.Dropdown, detector: gr.Dropdown) -> None:
    """The tab's components and events; sam_type and detector: the dropdowns the tabs share."""
    def segment(image_path, prompt, sam_type, box_threshold, text_threshold, nms_iou_threshold, multimask_output, detector=None,
                progress=gr.Progress(track_tqdm=True)):
        if image_path is None:
            raise gr.Error("Upload an image first.")
        if not prompt or not prompt.strip():
            raise gr.Error('Type what to find, e.g. "car, wheel".')
        options = {
            "box_threshold": box_threshold, "text_threshold": text_threshold, "multimask_output": bool(multimask_output),
            "nms_iou_threshold": None if nms_iou_threshold >= 1.0 else nms_iou_threshold,  # 1: no box is dropped
        }
        if detector:
            options["detector"] = detector
        try:
            image = load_image(image_path)
            drawing, model, exported = backend.text(image_path, image, prompt, sam_type, options, progress)
        except LangSAMError as error:
            raise gr.Error(str(error)) from None
        return drawing, detection_rows(exported), downloads.write(exported), status_line(len(exported["detections"]), model)

    with gr.Tab("Text prompt"):
        with gr.Row():
            with gr.Column():
                box_threshold = gr.Slider(0.0, 1.0, value=BOX_THRESHOLD, step=0.01, label="Box threshold")
                text_threshold = gr.Slider(0.0, 1.0, value=TEXT_THRESHOLD, step=0.01, label="Text threshold")
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
    # the detector last, so that gradio_client calls written before it was offered still fit
    inputs = [image, prompt, sam_type, box_threshold, text_threshold, nms_iou_threshold, multimask_output, detector]
    outputs = [drawing, table, download, status]
    submit.click(segment, inputs=inputs, outputs=outputs, api_name="predict")
    prompt.submit(segment, inputs=inputs, outputs=outputs, api_name=False)


def detection_rows(exported: dict) -> list[list]:
    """The table of LangSAMResult.to_json's detections."""
    return [
        [d["label"], round(d["score"], 3), round(d["mask_score"], 3), ", ".join(f"{v:.1f}" for v in d["box"])]
        for d in exported["detections"]
    ]


def status_line(count: int, model: str) -> str:
    found = f"{count} detection{'s' if count != 1 else ''}" if count else "Nothing found"
    return f"{found}. Model: {model}."
