"""Gradio components that more than one tab of the app uses."""

from __future__ import annotations

import gradio as gr


def uploaded_image(**options) -> gr.Image:
    """An image input that hands the handler the uploaded file itself: lang-sam's reader decodes it
    (EXIF orientation, 16-bit, CMYK, clear errors for broken files) instead of Gradio, which fails
    on a broken file before the handler can explain, and re-encodes good ones. (Set on the instance:
    a gr.Image subclass would make Gradio write a .pyi file next to this module.)"""
    component = gr.Image(type="filepath", **options)
    component.preprocess = lambda payload: None if payload is None else payload.path
    return component
