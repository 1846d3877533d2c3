"""The app's everything tab: SAM prompted with a grid of points, every mask drawn and listed (and
named by a semantic model where the backend offers one). Its button is the "/everything" endpoint."""

from __future__ import annotations

import gradio as gr

from lang_sam.errors import LangSAMError
from lang_sam.interfaces.app.backend import Backend
from lang_sam.interfaces.app.components import uploaded_image
from lang_sam.interfaces.app.downloads import DownloadFolder
from lang_sam.io.images import load_image

NO_NAMES = "none"
EVERYTHING_HEADERS = ["mask", "label", "area", "predicted IoU", "stability", "box (x, y, w, h)"]


def build(backend: Backend, downloads: DownloadFolder, sam_type: gr.Dropdown) -> None:
    """The tab's components and events; sam_type: the dropdown the tabs share."""
    def segment_everything(image_path, sam_type, points_per_side, pred_iou_thresh, stability_score_thresh, semantic,
                           progress=gr.Progress(track_tqdm=True)):
        if image_path is None:
            raise gr.Error("Upload an image first.")
        options = {"points_per_side": int(points_per_side), "pred_iou_thresh": pred_iou_thresh,
                   "stability_score_thresh": stability_score_thresh}
        if semantic and semantic != NO_NAMES:
            options["semantic"] = semantic
        try:
            image = load_image(image_path)
            drawing, model, exported = backend.everything(image_path, image, sam_type, options, progress)
        except LangSAMError as error:
            raise gr.Error(str(error)) from None
        count = len(exported["masks"])
        status = f"{count} mask{'s' if count != 1 else ''}. Model: {model}." if count else f"No mask kept. Model: {model}."
        return drawing, everything_rows(exported), downloads.write(exported), status

    with gr.Tab("Everything"):
        with gr.Row():
            with gr.Column():
                points_per_side = gr.Slider(1, 64, value=32, step=1, label="Points per side (the grid of point prompts)",
                                            elem_id="points-per-side")
                pred_iou_thresh = gr.Slider(0.0, 1.0, value=0.88, step=0.01, label="Predicted IoU threshold")
                stability_score_thresh = gr.Slider(0.0, 1.0, value=0.95, step=0.01, label="Stability score threshold")
                semantic = gr.Dropdown([NO_NAMES, *backend.semantic_models], value=NO_NAMES, elem_id="semantic",
                                       label="Name the masks with (a semantic segmentation model)",
                                       visible=bool(backend.semantic_models))
                everything_image = uploaded_image(label="Image", elem_id="everything-image")
                everything_submit = gr.Button("Segment everything", variant="primary", elem_id="everything-submit")
            with gr.Column():
                everything_drawing = gr.Image(label="Masks", type="numpy", format="png", interactive=False,
                                              elem_id="everything-drawing")
                everything_status = gr.Markdown(elem_id="everything-status")
                everything_table = gr.Dataframe(headers=EVERYTHING_HEADERS, label="Masks", interactive=False,
                                                elem_id="everything-masks")
                everything_download = gr.File(label="Masks as JSON (COCO RLE)", elem_id="everything-download")
    everything_submit.click(
        segment_everything,
        inputs=[everything_image, sam_type, points_per_side, pred_iou_thresh, stability_score_thresh, semantic],
        outputs=[everything_drawing, everything_table, everything_download, everything_status],
        api_name="everything",
    )


def everything_rows(exported: dict) -> list[list]:
    return [
        [index + 1, mask.get("label", ""), mask["area"], round(mask["predicted_iou"], 3), round(mask["stability_score"], 3),
         ", ".join(f"{v:.0f}" for v in mask["bbox"])]
        for index, mask in enumerate(exported["masks"])
    ]
