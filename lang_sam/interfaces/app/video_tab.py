"""The app's video tab: what a prompt names, or the objects clicked on the first frame, tracked
through a video, offered when the backend tracks video. Its button is the "/track" endpoint; the
clicks travel as POST /track's "clicks" JSON (one entry per object)."""

from __future__ import annotations

import json

import gradio as gr
import numpy as np

from lang_sam.errors import LangSAMError
from lang_sam.interfaces.app.backend import Backend
from lang_sam.interfaces.app.downloads import DownloadFolder
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD

TRACK_HEADERS = ["id", "label", "first frame", "last frame", "frames seen", "best score"]
OBJECT, BACKGROUND = "object point", "background point"
CLICK_COLOURS = ((230, 40, 40), (40, 200, 60), (40, 110, 230), (240, 190, 30), (190, 60, 210))  # object 1, 2, ...
MARK = 4  # half the side of a click's square, in pixels


def build(backend: Backend, downloads: DownloadFolder, detector: gr.Dropdown, video_types: list[str] | None) -> None:
    """The tab's components and events (the tab hidden when the backend does not track video);
    detector: the dropdown the tabs share; video_types: the video models offered."""
    def track_video(video_path, prompt, video_type, detector, box_threshold, text_threshold, redetect_every, max_lost,
                    stride, clicks_text=None, progress=gr.Progress()):
        if video_path is None:
            raise gr.Error("Upload a video first.")
        clicks = [item for item in read_clicks(clicks_text) if item["points"]]
        prompt = (prompt or "").strip()
        if clicks and prompt:
            raise gr.Error("Track what the prompt names or the objects you clicked, one or the other: clear the clicks or the prompt.")
        if not clicks and not prompt:
            raise gr.Error('Type what to track, e.g. "car, person", or click objects on the first frame.')
        options = {"stride": int(stride)} if clicks else {
            "box_threshold": box_threshold, "text_threshold": text_threshold, "redetect_every": int(redetect_every),
            "max_lost": int(max_lost), "stride": int(stride), "detector": detector or None}
        try:
            summary = backend.track(video_path, prompt or None, video_type or None, options, downloads.new_folder(), progress,
                                    clicks=clicks or None)
        except LangSAMError as error:
            raise gr.Error(str(error)) from None
        rows = [[track_id, seen["label"], seen["first"], seen["last"], seen["frames"], round(seen["best_score"], 3)]
                for track_id, seen in sorted(summary.tracks.items())]
        status = f"{summary.frames} frames, {len(summary.tracks)} track{'s' if len(summary.tracks) != 1 else ''}."
        return str(summary.video), rows, str(summary.lines), status

    def clicked(video_path, clicks_text, mode, evt: gr.SelectData):
        if video_path is None:
            raise gr.Error("Upload a video first.")
        x, y = evt.index
        objects = read_clicks(clicks_text) or [{"points": [], "point_labels": []}]
        objects[-1]["points"].append([int(x), int(y)])
        objects[-1]["point_labels"].append(1 if mode == OBJECT else 0)
        return draw_clicks(first_frame(video_path), objects), json.dumps(objects)

    def next_object(clicks_text):
        objects = read_clicks(clicks_text)
        if not objects or not objects[-1]["points"]:
            return clicks_text  # the next click starts it already
        return json.dumps([*objects, {"points": [], "point_labels": []}])

    def cleared(video_path):
        return (None if video_path is None else first_frame(video_path)), ""

    with gr.Tab("Video", visible=backend.tracks_video):
        with gr.Row():
            with gr.Column():
                video_upload = gr.Video(label="Video", sources=["upload"], elem_id="video-upload")
                video_prompt = gr.Textbox(label="What to track (or click objects on the first frame below)",
                                          placeholder="car, person", elem_id="video-prompt")
                video_type = gr.Dropdown(video_types or [], value=(video_types or [None])[0], elem_id="video-type",
                                         label="Video model (SAM 2.1: masks carried from frame to frame by its memory)")
                with gr.Accordion("More options", open=False):
                    video_box_threshold = gr.Slider(0.0, 1.0, value=BOX_THRESHOLD, step=0.01, label="Box threshold")
                    video_text_threshold = gr.Slider(0.0, 1.0, value=TEXT_THRESHOLD, step=0.01, label="Text threshold")
                    redetect_every = gr.Slider(1, 60, value=10, step=1, label="Detect again every N frames (new objects)")
                    max_lost = gr.Slider(1, 120, value=30, step=1, label="End a track unseen for N frames")
                    video_stride = gr.Slider(1, 10, value=1, step=1, label="Process every N-th frame")
                track_submit = gr.Button("Track", variant="primary", elem_id="track-submit")
                first_frame_canvas = gr.Image(label="First frame: a click adds a point to the current object", type="numpy", format="png",
                                              interactive=False, elem_id="video-first-frame")
                video_click_mode = gr.Radio([OBJECT, BACKGROUND], value=OBJECT, label="A click adds", elem_id="video-click-mode")
                with gr.Row():
                    next_button = gr.Button("Next object", elem_id="video-next-object")
                    clear_button = gr.Button("Clear clicks", elem_id="video-clear-clicks")
                video_clicks = gr.Textbox(label='Clicks, one entry per object (POST /track\'s "clicks")', interactive=False,
                                          elem_id="video-clicks")
            with gr.Column():
                video_result = gr.Video(label="Tracked (masks, ids, labels)", interactive=False, elem_id="video-result")
                video_status = gr.Markdown(elem_id="video-status")
                video_table = gr.Dataframe(headers=TRACK_HEADERS, label="Objects", interactive=False, elem_id="video-objects")
                video_download = gr.File(label="Per frame as JSON Lines (COCO RLE masks)", elem_id="video-download")
    if backend.tracks_video:
        track_submit.click(
            track_video,
            inputs=[video_upload, video_prompt, video_type, detector, video_box_threshold, video_text_threshold,
                    redetect_every, max_lost, video_stride, video_clicks],
            outputs=[video_result, video_table, video_download, video_status], api_name="track",
        )
        video_upload.change(cleared, inputs=[video_upload], outputs=[first_frame_canvas, video_clicks], api_name=False)
        clear_button.click(cleared, inputs=[video_upload], outputs=[first_frame_canvas, video_clicks], api_name=False)
        first_frame_canvas.select(clicked, inputs=[video_upload, video_clicks, video_click_mode],
                                  outputs=[first_frame_canvas, video_clicks], api_name=False)
        next_button.click(next_object, inputs=[video_clicks], outputs=[video_clicks], api_name=False)


def read_clicks(text: str | None) -> list[dict]:
    """The clicks' JSON as a list of {"points", "point_labels"} objects ([] for none), else a
    gr.Error saying what it should be."""
    try:
        objects = json.loads(text) if text else []
        if not isinstance(objects, list) or not all(isinstance(item, dict) and isinstance(item.get("points"), list) for item in objects):
            raise ValueError
    except ValueError:
        raise gr.Error('The clicks are a JSON list of objects, e.g. [{"points": [[120, 80]], "point_labels": [1]}].') from None
    return objects


def first_frame(video_path: str) -> np.ndarray:
    """The video's first frame, upright, as tracking reads it (the frame the clicks are on)."""
    from lang_sam.video.frames import VideoFrames

    frames = iter(VideoFrames(video_path))
    try:
        return next(frames).image
    finally:
        frames.close()


def draw_clicks(image: np.ndarray, objects: list[dict]) -> np.ndarray:
    """image with each click a square in its object's colour: filled on the object, hollow off it (a new image)."""
    drawing = image.copy()
    height, width = drawing.shape[:2]
    for number, item in enumerate(objects):
        colour = CLICK_COLOURS[number % len(CLICK_COLOURS)]
        for (x, y), label in zip(item["points"], item.get("point_labels") or [1] * len(item["points"])):
            top, left, bottom, right = max(0, y - MARK), max(0, x - MARK), min(height, y + MARK + 1), min(width, x + MARK + 1)
            drawing[top:bottom, left:right] = colour
            if not label:
                drawing[top + 1:bottom - 1, left + 1:right - 1] = image[top + 1:bottom - 1, left + 1:right - 1]
    return drawing
