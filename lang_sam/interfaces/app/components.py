"""Gradio components that more than one tab of the app uses."""

from __future__ import annotations

import gradio as gr
import numpy as np

from lang_sam.interfaces.app.downloads import DownloadFolder

TABLE_HEADERS = ["label", "score", "mask score", "box (x0, y0, x1, y1)"]


def uploaded_image(**options) -> gr.Image:
    """An image input that hands the handler the uploaded file itself: lang-sam's reader decodes it
    (EXIF orientation, 16-bit, CMYK, clear errors for broken files) instead of Gradio, which fails
    on a broken file before the handler can explain, and re-encodes good ones. (Set on the instance:
    a gr.Image subclass would make Gradio write a .pyi file next to this module.)"""
    component = gr.Image(type="filepath", **options)
    component.preprocess = lambda payload: None if payload is None else payload.path
    return component


def detection_outputs(prefix: str = "") -> list[gr.components.Component]:
    """A text answer's outputs, in the order detection_answer fills them: the labelled drawing, the
    detections' table, their JSON download and a status line (placed drawing, status, table,
    download); prefix: before their elem_ids drawing, detections, download and status."""
    drawing = gr.Image(label="Result", type="numpy", format="png", interactive=False, elem_id=f"{prefix}drawing")
    status = gr.Markdown(elem_id=f"{prefix}status")
    table = gr.Dataframe(headers=TABLE_HEADERS, label="Detections", interactive=False, elem_id=f"{prefix}detections")
    download = gr.File(label="Detections as JSON (COCO RLE masks)", elem_id=f"{prefix}download")
    return [drawing, table, download, status]


def detection_answer(downloads: DownloadFolder, drawing: np.ndarray, model: str, exported: dict) -> tuple:
    """What detection_outputs show of one answer (a Backend.text's drawing, model and JSON)."""
    return drawing, detection_rows(exported), downloads.write(exported), status_line(len(exported["detections"]), model)


def detection_rows(exported: dict) -> list[list]:
    """The table of LangSAMResult.to_json's detections."""
    return [
        [d["label"], round(d["score"], 3), round(d["mask_score"], 3), ", ".join(f"{v:.1f}" for v in d["box"])]
        for d in exported["detections"]
    ]


def status_line(count: int, model: str) -> str:
    found = f"{count} detection{'s' if count != 1 else ''}" if count else "Nothing found"
    return f"{found}. Model: {model}."
