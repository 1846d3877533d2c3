"""The app's more-like-this tab (SAM 3): example and counter-example boxes, two clicks each, on an
image, with or without a text prompt; every instance of the concept they show is found, not only
the boxed ones. Its button is the "/exemplars" API endpoint, the boxes given as the JSON that the
tab shows: {"exemplars": [[x0, y0, x1, y1], ...], "negative_exemplars": [...]}."""

from __future__ import annotations

import json

import gradio as gr

from lang_sam.errors import LangSAMError
from lang_sam.interfaces.app.backend import Backend
from lang_sam.interfaces.app.components import detection_answer, detection_outputs, uploaded_image
from lang_sam.interfaces.app.corners import decoded_image, draw_boxes, mark_lone_corner, paired_boxes
from lang_sam.interfaces.app.downloads import DownloadFolder
from lang_sam.vocabulary import BOX_THRESHOLD

EXAMPLE, COUNTER = "example (more like this)", "counter-example (not like this)"
KINDS = {EXAMPLE: ("exemplars", (0, 200, 0)), COUNTER: ("negative_exemplars", (230, 0, 0))}  # LangSAM.predict's keyword, colour
KEYWORDS = [keyword for keyword, _ in KINDS.values()]


def build(backend: Backend, downloads: DownloadFolder, sam_type: gr.Dropdown) -> None:
    """The tab's components and events; sam_type: the dropdown the tabs share."""
    def clicked(image_path, corners, kind, evt: gr.SelectData):
        if image_path is None:
            raise gr.Error("Upload an image first.")
        x, y = evt.index
        kind = corners[-1][2] if len(corners) % 2 else kind  # a box's second corner is of its first's kind
        return show(image_path, [*corners, [int(x), int(y), kind]])

    def show(image_path, corners):
        """The canvas (the image, its boxes drawn: examples green, counter-examples red), the
        corners [x, y, kind], the boxes as JSON and the status."""
        if image_path is None:
            return None, [], "{}", "Upload an image, then click two opposite corners of an example."
        boxes = boxes_of(corners)
        drawing = mark_lone_corner(decoded_image(image_path), corners)
        for keyword, colour in KINDS.values():
            drawing = draw_boxes(drawing, boxes.get(keyword, []), colour)
        if len(corners) % 2:
            status = f"Click the opposite corner of the {corners[-1][2].split(' (')[0]}."
        elif corners:
            examples, counters = (len(boxes.get(keyword, [])) for keyword in KEYWORDS)
            status = (f"{examples} example{'s' if examples != 1 else ''}, {counters} counter-example"
                      f"{'s' if counters != 1 else ''}: draw more, or find more like this.")
        else:
            status = "Click two opposite corners of an example."
        return downloads.write_drawing(drawing), corners, json.dumps(boxes), status

    def find(image_path, prompt, sam_type, boxes, threshold, progress=gr.Progress()):
        if image_path is None:
            raise gr.Error("Upload an image first.")
        options = {**parsed_boxes(boxes), "box_threshold": threshold}
        try:
            drawing, model, exported = backend.text(image_path, decoded_image(image_path), prompt or "", sam_type, options,
                                                    progress)
        except LangSAMError as error:
            raise gr.Error(str(error)) from None
        return detection_answer(downloads, drawing, model, exported)

    with gr.Tab("More like this"):
        gr.Markdown("SAM 3 (`sam3`, `sam3-lite-text`): box an example, two clicks on opposite corners, and it finds every "
                    "instance of that concept; a counter-example box shows what is not it.")
        with gr.Row():
            with gr.Column():
                upload = uploaded_image(label="Image", elem_id="exemplar-upload")
                kind = gr.Radio(list(KINDS), value=EXAMPLE, label="Two clicks draw", elem_id="exemplar-kind")
                prompt = gr.Textbox(label="Text prompt (optional: the boxes' one concept, e.g. \"car\")",
                                    elem_id="exemplar-prompt")
                threshold = gr.Slider(0.0, 1.0, value=BOX_THRESHOLD, step=0.01, label="Score threshold",
                                      elem_id="exemplar-threshold")
                with gr.Row():
                    undo_button = gr.Button("Undo", elem_id="exemplar-undo")
                    clear_button = gr.Button("Clear", elem_id="exemplar-clear")
                submit = gr.Button("Find more like this", variant="primary", elem_id="exemplar-submit")
                boxes = gr.Textbox(value="{}", label="Boxes (pixel x0, y0, x1, y1)", interactive=False,
                                   elem_id="exemplar-boxes")
            with gr.Column():
                canvas = gr.Image(label="Click two opposite corners of a box", type="filepath", interactive=False,
                                  elem_id="exemplar-canvas")
                drawn = gr.Markdown(elem_id="exemplar-drawn")
                outputs = detection_outputs("exemplar-")
        corners = gr.State([])
    shown = [canvas, corners, boxes, drawn]
    upload.change(lambda path: show(path, []), inputs=[upload], outputs=shown, api_name=False)
    canvas.select(clicked, inputs=[upload, corners, kind], outputs=shown, api_name=False, queue=False)
    undo_button.click(lambda path, corners: show(path, corners[:-1]), inputs=[upload, corners], outputs=shown, api_name=False)
    clear_button.click(lambda path: show(path, []), inputs=[upload], outputs=shown, api_name=False)
    submit.click(find, inputs=[upload, prompt, sam_type, boxes, threshold], outputs=outputs, api_name="exemplars")


def boxes_of(corners: list[list]) -> dict[str, list[list[int]]]:
    """LangSAM.predict's exemplars and negative_exemplars (those drawn) from the corners [x, y, kind],
    each two one box of its kind."""
    kinds = [corner[2] for corner in corners[::2]]
    boxes = paired_boxes(corners)
    return {keyword: [box for box, of in zip(boxes, kinds) if of == kind] for kind, (keyword, _) in KINDS.items()
            if kind in kinds[: len(boxes)]}


def parsed_boxes(text: str) -> dict:
    """The boxes JSON (the tab's, or an API caller's) as LangSAM.predict's exemplars and
    negative_exemplars; a gr.Error that says what to give otherwise. The numbers are checked by LangSAM."""
    try:
        boxes = json.loads(text or "{}")
    except json.JSONDecodeError:
        boxes = None
    if not isinstance(boxes, dict) or not set(boxes) <= set(KEYWORDS):
        raise gr.Error(f'The boxes are JSON: {{"exemplars": [[x0, y0, x1, y1], ...], "negative_exemplars": [...]}}; got {text!r}.')
    if not any(boxes.values()):
        raise gr.Error("Draw a box around an example first: two clicks on its opposite corners.")
    return boxes
