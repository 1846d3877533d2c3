"""The app's text-prompt tab: an image and class names in; the labelled drawing, a table of the
detections and their JSON out. Its button is also the "/predict" API endpoint for gradio_client."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from lang_sam.errors import LangSAMError
from lang_sam.interfaces.app.backend import Backend
from lang_sam.interfaces.app.components import detection_answer, detection_outputs, uploaded_image
from lang_sam.interfaces.app.downloads import DownloadFolder
from lang_sam.io.images import load_image
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD

ASSETS = Path(__file__).resolve().parents[3] / "assets"
EXAMPLES = [("astronaut.jpg", "person, flag"), ("chelsea.jpg", "cat"), ("coffee.jpg", "cup, saucer, spoon")]


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
        return detection_answer(downloads, drawing, model, exported)

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
                outputs = detection_outputs()
        examples = [[str(ASSETS / name), text] for name, text in EXAMPLES if (ASSETS / name).is_file()]
        if examples:
            gr.Examples(examples, inputs=[image, prompt])
    # the detector last, so that gradio_client calls written before it was offered still fit
    inputs = [image, prompt, sam_type, box_threshold, text_threshold, nms_iou_threshold, multimask_output, detector]
    submit.click(segment, inputs=inputs, outputs=outputs, api_name="predict")
    prompt.submit(segment, inputs=inputs, outputs=outputs, api_name=False)
