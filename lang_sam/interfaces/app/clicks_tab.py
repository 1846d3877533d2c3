"""The app's clicks tab: object and background points and box corners clicked on an image, each
click answered in milliseconds (the image's embedding is encoded once, then reused)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import gradio as gr
import numpy as np

from lang_sam.drawing import draw_image
from lang_sam.errors import LangSAMError
from lang_sam.interfaces.app.backend import Backend
from lang_sam.interfaces.app.components import uploaded_image
from lang_sam.interfaces.app.corners import decoded_image, mark_lone_corner, paired_boxes
from lang_sam.interfaces.app.downloads import DownloadFolder
from lang_sam.results import LangSAMResult

OBJECT, BACKGROUND, BOX_CORNER = "object point", "background point", "box corner (two clicks)"
CLICK_KINDS = {OBJECT: 1, BACKGROUND: 0, BOX_CORNER: 2}  # a click is [x, y, kind]; corners pair into boxes
BEST = "best"
# Shift+click adds a background point: the page remembers whether Shift was held at the last mouse press
SHIFT_LISTENER = "() => { document.addEventListener('mousedown', (e) => { window.langSamShift = e.shiftKey; }, true); }"
SHIFT_MEANS_BACKGROUND = f"(...inputs) => {{ if (window.langSamShift) inputs[2] = {BACKGROUND!r}; return inputs; }}"


def build(app: gr.Blocks, backend: Backend, downloads: DownloadFolder, sam_type: gr.Dropdown) -> None:
    """The tab's components and events; app: the Blocks (its page load installs the Shift listener),
    sam_type: the dropdown the tabs share."""
    def clicked(image_path, clicks, mode, prompt, sam_type, evt: gr.SelectData):
        if image_path is None:
            raise gr.Error("Upload an image first.")
        x, y = evt.index
        return run_clicks(image_path, [*clicks, [int(x), int(y), CLICK_KINDS[mode]]], prompt, sam_type, no_progress)

    def undo(image_path, clicks, prompt, sam_type, progress=gr.Progress()):
        return run_clicks(image_path, clicks[:-1], prompt, sam_type, progress)

    def run_clicks(image_path, clicks, prompt, sam_type, progress):
        """Segment with the clicks so far; outputs: drawing, clicks, status, clicks as text, the
        answer's JSON (for the candidate choice) and the candidate choice itself."""
        no_choice = gr.update(choices=[BEST], value=BEST, visible=False)
        if image_path is None:
            return None, [], "Upload an image, then click on it.", "[]", {}, no_choice
        image = decoded_image(image_path)
        options = click_prompts(clicks)
        if not options:
            waiting = "Click the opposite corner of the box." if clicks else "Click on the object."
            return downloads.write_drawing(draw_corners(image, clicks)), clicks, waiting, json.dumps(clicks), {}, no_choice
        started = time.perf_counter()
        try:
            drawing, model, exported = backend.text(image_path, image, prompt or "", sam_type, options, progress)
        except LangSAMError as error:
            raise gr.Error(str(error)) from None
        milliseconds = (time.perf_counter() - started) * 1000
        status = (f"{len(clicks)} click{'s' if len(clicks) != 1 else ''}: mask in {milliseconds:.0f} ms (the "
                  f"{image.shape[1]}x{image.shape[0]} image's embedding is encoded once, then reused). Model: {model}.")
        choices = candidate_choices(exported)
        choice = gr.update(choices=choices, value=BEST, visible=len(choices) > 1)
        return downloads.write_drawing(draw_corners(drawing, clicks)), clicks, status, json.dumps(clicks), exported, choice

    def choose_candidate(image_path, clicks, exported, choice):
        if image_path is None or not exported:
            return gr.update()
        result = LangSAMResult.from_json(exported)
        if choice != BEST:
            result = with_candidate(result, int(choice))
        return downloads.write_drawing(draw_corners(draw_image(decoded_image(image_path), result), clicks))

    with gr.Tab("Clicks"):
        with gr.Row():
            with gr.Column():
                click_upload = uploaded_image(label="Image", elem_id="click-upload")
                click_mode = gr.Radio(list(CLICK_KINDS), value=OBJECT, elem_id="click-mode",
                                      label="A click adds (Shift+click: a background point)")
                click_prompt = gr.Textbox(label="Text prompt (optional: text finds, clicks refine)", elem_id="click-prompt")
                with gr.Row():
                    undo_button = gr.Button("Undo", elem_id="click-undo")
                    clear_button = gr.Button("Clear", elem_id="click-clear")
            with gr.Column():
                canvas = gr.Image(label="Click on the image", type="filepath", interactive=False,
                                  elem_id="click-canvas")
                click_status = gr.Markdown(elem_id="click-status")
                candidate = gr.Radio([BEST], value=BEST, visible=False, elem_id="click-candidate",
                                     label="SAM's three masks for this click (best: the highest predicted IoU)")
                click_points = gr.Textbox(label="Clicks (x, y, kind: 1 object, 0 background, 2 box corner)",
                                          interactive=False, elem_id="click-points")
        clicks = gr.State([])
        click_answer = gr.State({})
    click_outputs = [canvas, clicks, click_status, click_points, click_answer, candidate]
    click_upload.change(lambda path: run_clicks(path, [], "", None, None), inputs=[click_upload], outputs=click_outputs,
                        api_name=False)
    canvas.select(clicked, inputs=[click_upload, clicks, click_mode, click_prompt, sam_type], outputs=click_outputs,
                  api_name=False, js=SHIFT_MEANS_BACKGROUND, queue=False)
    candidate.input(choose_candidate, inputs=[click_upload, clicks, click_answer, candidate], outputs=[canvas],
                    api_name=False)
    app.load(None, js=SHIFT_LISTENER)
    undo_button.click(undo, inputs=[click_upload, clicks, click_prompt, sam_type], outputs=click_outputs, api_name=False)
    clear_button.click(lambda path: run_clicks(path, [], "", None, None), inputs=[click_upload], outputs=click_outputs,
                       api_name=False)


def no_progress(*args, **kwargs) -> None:
    """The progress of a click: none shown (a click answers in milliseconds, outside Gradio's queue)."""


def click_prompts(clicks: list[list[int]]) -> dict:
    """LangSAM.predict's points, point_labels and boxes from the app's clicks [x, y, kind]: kind 1
    or 0 a point, 2 a box corner (each two corners one box; a lone last corner waits for its pair).
    Empty when there is nothing to segment yet."""
    points = [click for click in clicks if click[2] in (0, 1)]
    boxes = paired_boxes([click for click in clicks if click[2] == 2])
    prompts: dict = {}
    if points:
        prompts.update(points=[click[:2] for click in points], point_labels=[click[2] for click in points])
    if boxes:
        prompts["boxes"] = boxes
    return prompts


def draw_corners(drawing: np.ndarray, clicks: list[list[int]]) -> np.ndarray:
    """The drawing with a box corner still waiting for its pair marked."""
    return mark_lone_corner(drawing, [click for click in clicks if click[2] == 2])


def candidate_choices(exported: dict) -> list:
    """The candidate radio's choices: best, then SAM's masks of the first object decoded with three, by score."""
    for detection in exported.get("detections", []):
        if len(detection.get("candidates", [])) == 3:
            return [BEST, *((f"{index + 1}: mask score {c['mask_score']:.3f}", str(index))
                             for index, c in enumerate(detection["candidates"]))]
    return [BEST]


def with_candidate(result: LangSAMResult, index: int) -> LangSAMResult:
    """result with candidate `index` as the mask of every object decoded with three candidates."""
    masks, scores = result.masks.copy(), result.mask_scores.copy()
    for row in np.flatnonzero(np.isfinite(result.candidate_scores[:, index])):
        masks[row], scores[row] = result.candidates[row, index], result.candidate_scores[row, index]
    return replace(result, masks=masks, mask_scores=scores)
