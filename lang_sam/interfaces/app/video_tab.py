"""The app's video tab: what a prompt names tracked through a video, offered when the backend
tracks video. Its button is the "/track" endpoint."""

from __future__ import annotations

import gradio as gr

from lang_sam.errors import LangSAMError
from lang_sam.interfaces.app.backend import Backend
from lang_sam.interfaces.app.downloads import DownloadFolder
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD

TRACK_HEADERS = ["id", "label", "first frame", "last frame", "frames seen", "best score"]


def build(backend: Backend, downloads: DownloadFolder, detector: gr.Dropdown, video_types: list[str] | None) -> None:
    """The tab's components and events (the tab hidden when the backend does not track video);
    detector: the dropdown the tabs share; video_types: the video models offered."""
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
    if backend.tracks_video:
        track_submit.click(
            track_video,
            inputs=[video_upload, video_prompt, video_type, detector, video_box_threshold, video_text_threshold,
                    redetect_every, max_lost, video_stride],
            outputs=[video_result, video_table, video_download, video_status], api_name="track",
        )
