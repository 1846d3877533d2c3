"""Following clicked objects through a video: clicks on the first frame name the objects, and the
video model's memory carries each one's mask to every later frame (no detector, no text). SAM 3
(its tracker, loaded without the concept detector), SAM 2.1 video and EdgeTAM video all do it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from lang_sam.errors import InvalidPromptError
from lang_sam.families.base import VideoSegmenter
from lang_sam.video.frames import Frame, VideoFrames, VideoInput
from lang_sam.vocabulary import ObjectPrompt
from lang_sam.vocabulary.prompts import check_inside

DEFAULT_CLICK_TRACKER = "sam3"


def follow_clicks(video: VideoInput | VideoFrames, clicks: dict[int, ObjectPrompt],
                  segmenter: VideoSegmenter | str | Path = DEFAULT_CLICK_TRACKER,
                  device: str | torch.device | None = None,
                  dtype: torch.dtype | str | None = None) -> Iterator[tuple[Frame, dict[int, np.ndarray]]]:
    """Each frame of video with the (H, W) bool mask of every clicked object on it, by id. clicks:
    object id -> an ObjectPrompt of pixel points and labels (1 on the object, 0 off it) on the first
    frame. segmenter: a loaded video segmenter, or a name, folder or repo id of SAM 3, SAM 2.1 or
    EdgeTAM (lang_sam.families.loading.load_click_tracker) loaded on device in dtype."""
    if not clicks:
        raise InvalidPromptError("Give at least one clicked object: {object id: ObjectPrompt(points=..., labels=...)}.")
    frames = video if isinstance(video, VideoFrames) else VideoFrames(video)
    if not isinstance(segmenter, VideoSegmenter):
        from lang_sam.families.loading import load_click_tracker

        segmenter = load_click_tracker(segmenter, device, dtype)
    for prompt in clicks.values():
        if prompt.points is not None:
            check_inside(prompt.points, frames.size, "click")
    stream = segmenter.start(frames.size)
    for position, frame in enumerate(frames):
        masks = stream.add_frame(frame.image)
        if position == 0:
            masks = stream.add_clicks(clicks)
        yield frame, masks
