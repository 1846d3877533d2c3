"""Where the app's answers come from: the Backend protocol, and LocalBackend on a ModelPool in this
process (the server's RemoteBackend is in lang_sam.interfaces.server.client)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from lang_sam.drawing import draw_image
from lang_sam.interfaces.models import ModelPool


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

    def track(self, video_path: str, prompt: str | None, sam_type: str | None, options: dict, out: Path,
              progress: Callable, clicks: list[dict] | None = None):
        """Track what prompt names, or the objects clicked on the first frame, through the video into
        out (NAME.mp4, NAME.jsonl): a lang_sam.video.outputs.TrackSummary. options: those of
        ModelPool.track (start, end and stride alone with clicks); clicks: as POST /track takes them,
        [{"points": [[x, y], ...], "point_labels": [1, 0, ...], "label": "name"}, ...]."""

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

    def track(self, video_path, prompt, sam_type, options, out, progress, clicks=None):
        from lang_sam.video.clicks import CLICKED_LABEL, check_clicks, clicked_objects
        from lang_sam.video.frames import VideoFrames
        from lang_sam.video.outputs import write_tracking

        options = dict(options)
        frames = VideoFrames(video_path, **{name: options.pop(name) for name in ("start", "end", "stride") if name in options})
        if clicks is None:
            progress(0.0, desc="Loading the video model and the detector (downloaded on first use)")
            results = self.pool.track(frames, prompt, sam_type, **options)
        else:
            prompts, names = clicked_objects([item["points"] for item in clicks], [item.get("point_labels") for item in clicks],
                                             [item.get("label", CLICKED_LABEL) for item in clicks])
            check_clicks(prompts, frames.size)
            progress(0.0, desc="Loading the video model (downloaded on first use)")
            results = self.pool.follow_clicks(frames, prompts, sam_type, names)
        return write_tracking(results, frames, out, on_frame=lambda summary: progress(
            (summary.frames, None), desc=f"Tracking: frame {summary.frames}, {len(summary.tracks)} tracks"))
