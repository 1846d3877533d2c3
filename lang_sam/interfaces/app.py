"""The Gradio web app: an image and a text prompt in; the labelled drawing, a table and the JSON out.

The app draws and tabulates; the predictions come from a backend: a ModelPool in this process
(``lang-sam app``, ``python app.py``) or the LitServe server it is mounted on (``lang-sam serve``).
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import uuid
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import gradio as gr
import numpy as np
from PIL import Image

from lang_sam.drawing import draw_image
from lang_sam.errors import LangSAMError
from lang_sam.interfaces.models import ModelPool
from lang_sam.io.images import load_image
from lang_sam.registry import DETECTORS, UNIVERSAL_MODELS, sam_names
from lang_sam.results import LangSAMResult
from lang_sam.settings import Settings
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD

ASSETS = Path(__file__).resolve().parents[2] / "assets"
NO_NAMES = "none"
OBJECT, BACKGROUND, BOX_CORNER = "object point", "background point", "box corner (two clicks)"
CLICK_KINDS = {OBJECT: 1, BACKGROUND: 0, BOX_CORNER: 2}  # a click is [x, y, kind]; corners pair into boxes
BEST = "best"
# Shift+click adds a background point: the page remembers whether Shift was held at the last mouse press
SHIFT_LISTENER = "() => { document.addEventListener('mousedown', (e) => { window.langSamShift = e.shiftKey; }, true); }"
SHIFT_MEANS_BACKGROUND = f"(...inputs) => {{ if (window.langSamShift) inputs[2] = {BACKGROUND!r}; return inputs; }}"
EXAMPLES = [("astronaut.jpg", "person, flag"), ("chelsea.jpg", "cat"), ("coffee.jpg", "cup, saucer, spoon")]
TABLE_HEADERS = ["label", "score", "mask score", "box (x0, y0, x1, y1)"]

EVERYTHING_HEADERS = ["mask", "label", "area", "predicted IoU", "stability", "box (x, y, w, h)"]
TRACK_HEADERS = ["id", "label", "first frame", "last frame", "frames seen", "best score"]


class Backend(Protocol):
    """Where the app's answers come from: models in this process, or the server the app is mounted on.

    Both methods take the image file, its decoded pixels, the SAM name, options and Gradio's
    progress, and return (drawing, "model in use", the answer as JSON: LangSAMResult.to_json or
    everything_json). The table and the download come from the JSON; a backend that received both
    (the server) hands them on as they came, so no mask is decoded or encoded again.
    """

    semantic_models: list[str]  # the models that may name everything-masks (none: not offered)
    tracks_video: bool  # whether the video tab is offered

    def text(self, image_path: str, image: np.ndarray, prompt: str, sam_type: str, options: dict,
             progress: Callable) -> tuple[np.ndarray, str, dict]:
        """options: LangSAM.predict's box_threshold, text_threshold, nms_iou_threshold,
        multimask_output, and "detector" (a served detector's name; absent: the default)."""

    def everything(self, image_path: str, image: np.ndarray, sam_type: str, options: dict,
                   progress: Callable) -> tuple[np.ndarray, str, dict]:
        """options: SamAutomaticMaskGenerator's, and "semantic": a model of semantic_models or None."""

    def track(self, video_path: str, prompt: str, sam_type: str | None, options: dict, out: Path,
              progress: Callable):
        """Track what prompt names through the video into out (NAME.mp4, NAME.jsonl): a
        lang_sam.video.outputs.TrackSummary. options: those of ModelPool.track."""


def uploaded_image(**options) -> gr.Image:
    """An image input that hands the handler the uploaded file itself: lang-sam's reader decodes it
    (EXIF orientation, 16-bit, CMYK, clear errors for broken files) instead of Gradio, which fails
    on a broken file before the handler can explain, and re-encodes good ones. (Set on the instance:
    a gr.Image subclass would make Gradio write a .pyi file next to this module.)"""
    component = gr.Image(type="filepath", **options)
    component.preprocess = lambda payload: None if payload is None else payload.path
    return component


class LocalBackend:
    """Models loaded in this process; a first use of a SAM size shows its loading."""

    tracks_video = True

    def __init__(self, pool: ModelPool) -> None:
        self.pool = pool
        self.semantic_models = pool.semantic_models

    def _load(self, sam_type: str, progress: Callable) -> None:
        if sam_type not in self.pool.loaded_sam_types:
            progress(0.0, desc=f"Loading SAM {sam_type} (downloaded on first use)")
            self.pool.get(sam_type)

    def text(self, image_path, image, prompt, sam_type, options, progress):
        self._load(sam_type, progress)
        progress(0.5, desc="Segmenting")
        result = self.pool.predict(image, prompt, sam_type, **options)
        return draw_image(image, result), self.pool.describe(sam_type, options.get("detector")), result.to_json()

    def everything(self, image_path, image, sam_type, options, progress):
        from lang_sam.everything import draw_everything, everything_json

        options = dict(options)
        semantic = options.pop("semantic", None)
        self._load(sam_type, progress)

        def batches(done: int, total: int) -> None:
            if done == total and semantic:  # the masks are named next
                progress(0.9, desc=f"Naming the masks with {semantic}")
                return
            progress(done / total, desc=f"Segmenting everything: point batch {done} of {total}")

        if semantic:  # loaded before the generator starts
            progress(0.0, desc=f"Loading {semantic} (downloaded on first use)")

        found = self.pool.everything(image, sam_type, progress=batches, semantic=semantic, **options)
        return draw_everything(image, found), self.pool.describe(sam_type, semantic=semantic), everything_json(found)

    def track(self, video_path, prompt, sam_type, options, out, progress):
        from lang_sam.video.frames import VideoFrames
        from lang_sam.video.outputs import write_tracking

        options = dict(options)
        frames = VideoFrames(video_path, **{name: options.pop(name) for name in ("start", "end", "stride") if name in options})
        progress(0.0, desc="Loading the video model and the detector (downloaded on first use)")
        results = self.pool.track(frames, prompt, sam_type, **options)
        return write_tracking(results, frames, out, on_frame=lambda summary: progress(
            (summary.frames, None), desc=f"Tracking: frame {summary.frames}, {len(summary.tracks)} tracks"))


def build_app(backend: Backend, default_sam_type: str = "vit_h", sam_types: list[str] | None = None,
              detectors: list[str] | None = None, video_types: list[str] | None = None):
    """The Blocks app: a text-prompt tab (its submit button is also the API endpoint "/predict" for
    gradio_client) and an everything tab ("/everything"), sharing the SAM dropdown.

    sam_types: the SAM dropdown's choices (default: every registry segmenter, SAM v1 first, and
    $LANG_SAM_CHECKPOINTS' own); detectors: the detector dropdown's, the default first (none or
    one: no dropdown); video_types: the video tab's models (SAM 2.1; the tab is offered when the
    backend tracks video)."""
    downloads = DownloadFolder()
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

    def track_video(video_path, prompt, video_type, detector, box_threshold, text_threshold, redetect_every, max_lost,
                    stride, progress=gr.Progress()):
        if video_path is None:
            raise gr.Error("Upload a video first.")
        if not prompt or not prompt.strip():
            raise gr.Error('Type what to track, e.g. "car, person".')
        options = {"box_threshold": box_threshold, "text_threshold": text_threshold, "redetect_every": int(redetect_every),
                   "max_lost": int(max_lost), "stride": int(stride), "detector": detector or None}
        try:
            summary = backend.track(video_path, prompt, video_type or None, options, downloads.new_folder(), progress)
        except LangSAMError as error:
            raise gr.Error(str(error)) from None
        rows = [[track_id, seen["label"], seen["first"], seen["last"], seen["frames"], round(seen["best_score"], 3)]
                for track_id, seen in sorted(summary.tracks.items())]
        status = f"{summary.frames} frames, {len(summary.tracks)} track{'s' if len(summary.tracks) != 1 else ''}."
        return str(summary.video), rows, str(summary.lines), status

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

    with gr.Blocks(title="lang-sam") as app:
        gr.Markdown("# lang-sam\nName what to segment, separated by commas: Grounding DINO finds boxes, SAM draws masks. "
                    "Or segment everything: SAM prompted with a grid of points.")
        with gr.Row():
            sam_type = gr.Dropdown(sam_types or sam_names(), value=default_sam_type, elem_id="sam-type",
                                   label="Segmenter (SAM v1, SAM 2.1, SAM-HQ; sam3 needs no detector)")
            detector = gr.Dropdown(detectors or [], value=(detectors or [None])[0], label="Detector", elem_id="detector",
                                   visible=len(detectors or []) > 1)
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
        with gr.Tab("Video", visible=backend.tracks_video):
            with gr.Row():
                with gr.Column():
                    video_upload = gr.Video(label="Video", sources=["upload"], elem_id="video-upload")
                    video_prompt = gr.Textbox(label="What to track", placeholder="car, person", elem_id="video-prompt")
                    video_type = gr.Dropdown(video_types or [], value=(video_types or [None])[0], elem_id="video-type",
                                             label="Video model (SAM 2.1: masks carried from frame to frame by its memory)")
                    with gr.Accordion("More options", open=False):
                        video_box_threshold = gr.Slider(0.0, 1.0, value=BOX_THRESHOLD, step=0.01, label="Box threshold")
                        video_text_threshold = gr.Slider(0.0, 1.0, value=TEXT_THRESHOLD, step=0.01, label="Text threshold")
                        redetect_every = gr.Slider(1, 60, value=10, step=1, label="Detect again every N frames (new objects)")
                        max_lost = gr.Slider(1, 120, value=30, step=1, label="End a track unseen for N frames")
                        video_stride = gr.Slider(1, 10, value=1, step=1, label="Process every N-th frame")
                    track_submit = gr.Button("Track", variant="primary", elem_id="track-submit")
                with gr.Column():
                    video_result = gr.Video(label="Tracked (masks, ids, labels)", interactive=False, elem_id="video-result")
                    video_status = gr.Markdown(elem_id="video-status")
                    video_table = gr.Dataframe(headers=TRACK_HEADERS, label="Objects", interactive=False, elem_id="video-objects")
                    video_download = gr.File(label="Per frame as JSON Lines (COCO RLE masks)", elem_id="video-download")
        # the detector last, so that gradio_client calls written before it was offered still fit
        inputs = [image, prompt, sam_type, box_threshold, text_threshold, nms_iou_threshold, multimask_output, detector]
        if backend.tracks_video:
            track_submit.click(
                track_video,
                inputs=[video_upload, video_prompt, video_type, detector, video_box_threshold, video_text_threshold,
                        redetect_every, max_lost, video_stride],
                outputs=[video_result, video_table, video_download, video_status], api_name="track",
            )
        outputs = [drawing, table, download, status]
        submit.click(segment, inputs=inputs, outputs=outputs, api_name="predict")
        prompt.submit(segment, inputs=inputs, outputs=outputs, api_name=False)
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
        everything_submit.click(
            segment_everything,
            inputs=[everything_image, sam_type, points_per_side, pred_iou_thresh, stability_score_thresh, semantic],
            outputs=[everything_drawing, everything_table, everything_download, everything_status],
            api_name="everything",
        )
    return app


@functools.lru_cache(maxsize=4)
def _decoded(path: str, modified: int) -> np.ndarray:
    image = load_image(path)
    image.flags.writeable = False  # shared by the clicks on this upload: nothing may draw on it
    return image


def decoded_image(path: str) -> np.ndarray:
    """The uploaded image, decoded once for all the clicks on it (read-only)."""
    return _decoded(path, Path(path).stat().st_mtime_ns)


def no_progress(*args, **kwargs) -> None:
    """The progress of a click: none shown (a click answers in milliseconds, outside Gradio's queue)."""


def click_prompts(clicks: list[list[int]]) -> dict:
    """LangSAM.predict's points, point_labels and boxes from the app's clicks [x, y, kind]: kind 1
    or 0 a point, 2 a box corner (each two corners one box; a lone last corner waits for its pair).
    Empty when there is nothing to segment yet."""
    points = [click[:2] for click in clicks if click[2] in (0, 1)]
    corners = [click[:2] for click in clicks if click[2] == 2]
    boxes = [[min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])] for a, b in zip(corners[::2], corners[1::2])]
    prompts: dict = {}
    if points:
        prompts.update(points=points, point_labels=[click[2] for click in clicks if click[2] in (0, 1)])
    if boxes:
        prompts["boxes"] = boxes
    return prompts


def draw_corners(drawing: np.ndarray, clicks: list[list[int]]) -> np.ndarray:
    """The drawing with a box corner still waiting for its pair marked (a small cross)."""
    corners = [click for click in clicks if click[2] == 2]
    if len(corners) % 2 == 0:
        return drawing
    marked = drawing.copy()
    x, y = corners[-1][:2]
    height, width = marked.shape[:2]
    marked[max(0, y - 6) : y + 7, min(max(0, x), width - 1)] = (255, 0, 255)
    marked[min(max(0, y), height - 1), max(0, x - 6) : x + 7] = (255, 0, 255)
    return marked


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


def everything_rows(exported: dict) -> list[list]:
    return [
        [index + 1, mask.get("label", ""), mask["area"], round(mask["predicted_iou"], 3), round(mask["stability_score"], 3),
         ", ".join(f"{v:.0f}" for v in mask["bbox"])]
        for index, mask in enumerate(exported["masks"])
    ]


def detection_rows(exported: dict) -> list[list]:
    """The table of LangSAMResult.to_json's detections."""
    return [
        [d["label"], round(d["score"], 3), round(d["mask_score"], 3), ", ".join(f"{v:.1f}" for v in d["box"])]
        for d in exported["detections"]
    ]


def status_line(count: int, model: str) -> str:
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
        path = self._new_file("detections.json")
        path.write_text(json.dumps(exported, indent=1))
        return str(path)

    def write_drawing(self, drawing: np.ndarray) -> str:
        """A drawing as an uncompressed BMP (a few milliseconds, where Gradio's PNG encoding of an
        array takes a quarter of a second; the same pixels): what a click answers with; its path."""
        path = self._new_file("drawing.bmp")
        Image.fromarray(drawing).save(path, format="BMP")
        return str(path)

    def new_folder(self) -> Path:
        """A new empty folder for one answer's files (the oldest answers beyond keep removed)."""
        folder = self.path / uuid.uuid4().hex  # one folder per answer: the download keeps its name
        folder.mkdir()
        answers = sorted(self.path.iterdir(), key=lambda entry: entry.stat().st_mtime_ns)
        for old in answers[: max(0, len(answers) - self.keep)]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def _new_file(self, name: str) -> Path:
        return self.new_folder() / name


def launch(settings: Settings, host: str | None = None, port: int | None = None, share: bool = False) -> None:
    """Build the app on a local ModelPool and serve it until interrupted."""
    pool = ModelPool(settings, detectors=list(DETECTORS), semantic_models=list(UNIVERSAL_MODELS))
    app = build_app(LocalBackend(pool), pool.settings.sam_type, pool.sam_types, list(pool.detector_names), pool.video_types)
    app.queue().launch(server_name=host, server_port=port, share=share or None)  # None: $GRADIO_SHARE decides
