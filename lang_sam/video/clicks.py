"""Following clicked objects through a video: clicks on the first frame name the objects, and the
video model's memory carries each one's mask to every later frame (no detector, no text). SAM 3
(its tracker, loaded without the concept detector), SAM 2.1 video and EdgeTAM video all do it.
The frames come as text tracking's do (TrackedFrame), so its outputs, the server's stream and the
app take both."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from lang_sam.errors import InvalidOptionError, InvalidPromptError
from lang_sam.families.base import TrackedFrame, TrackedObject, VideoSegmenter
from lang_sam.geometry import mask_to_box
from lang_sam.video.frames import VideoFrames, VideoInput
from lang_sam.vocabulary import ObjectPrompt
from lang_sam.vocabulary.prompts import check_inside, finite_array

DEFAULT_CLICK_TRACKER = "sam3"
CLICKED_LABEL = "object"  # the class name of a clicked object given none
CLICKED_SCORE = 1.0  # your objects score 1.0, as LangSAM.predict scores them
FRAME_OPTIONS = ("start", "end", "stride")


def clicked_objects(points, point_labels=None,
                    label: str | Sequence[str] = CLICKED_LABEL) -> tuple[dict[int, ObjectPrompt], dict[int, str]]:
    """Your clicks as follow_clicks takes them: ids 1, 2, ... in order -> ObjectPrompt, and id ->
    class name. points: one object's (N, 2) pixel xy, as LangSAM.predict takes them, or a list of
    those, one per object; point_labels: the same shape, 1 on the object, 0 off it (default all 1);
    label: every object's class name, or a list of one per object."""
    depth = _depth(points)
    objects = [] if depth == 0 else [points] if depth <= 2 else list(points)
    if not objects:
        raise InvalidPromptError("Click at least one object: points (N, 2) x, y pixels, or a list of those, one per object.")
    labels = [point_labels] if depth <= 2 or point_labels is None else list(point_labels)
    labels = labels * len(objects) if point_labels is None else labels
    names = [label] * len(objects) if isinstance(label, str) else list(label)
    for what, given in (("point_labels", labels), ("labels (class names)", names)):
        if len(given) != len(objects):
            raise InvalidPromptError(f"Got {len(objects)} clicked objects but {len(given)} {what}; give one per object.")
    if not all(isinstance(name, str) and name.strip() for name in names):
        raise InvalidPromptError(f"Each clicked object's label is a class name (text), got {names!r}.")
    prompts = {}
    for number, (xy, marks) in enumerate(zip(objects, labels), start=1):
        xy = finite_array(xy, f"Clicked object {number}'s points", (-1, 2))
        try:
            prompts[number] = ObjectPrompt(points=xy, labels=np.ones(len(xy), np.int64) if marks is None else marks)
        except InvalidPromptError as error:
            raise InvalidPromptError(f"Clicked object {number}: {error}") from None
    return prompts, dict(enumerate(names, start=1))


def check_clicks(clicks: Mapping[int, ObjectPrompt], size: tuple[int, int]) -> None:
    """An InvalidPromptError when there is no object or a click leaves the (H, W) first frame: what
    every caller checks before a model loads."""
    if not clicks:
        raise InvalidPromptError("Give at least one clicked object: {object id: ObjectPrompt(points=..., labels=...)}.")
    for prompt in clicks.values():
        if prompt.points is not None:
            check_inside(prompt.points, size, "click")


def follow_clicks(video: VideoInput | VideoFrames, clicks: dict[int, ObjectPrompt],
                  segmenter: VideoSegmenter | str | Path = DEFAULT_CLICK_TRACKER,
                  device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
                  label: str | Mapping[int, str] = CLICKED_LABEL) -> Iterator[TrackedFrame]:
    """One TrackedFrame per frame of video with the clicked objects on it (those whose mask is not
    empty), by id, with score 1.0 and their box around the mask. clicks: object id -> an
    ObjectPrompt of pixel points and labels (1 on the object, 0 off it) on the first frame; label:
    every object's class name, or one per id. segmenter: a loaded video segmenter, or a name,
    folder or repo id of SAM 3, SAM 2.1 or EdgeTAM (lang_sam.families.loading.load_click_tracker)
    loaded on device in dtype. The clicks are checked before the model loads."""
    names = {object_id: label for object_id in clicks} if isinstance(label, str) else dict(label)
    if set(names) != set(clicks):
        raise InvalidPromptError(f"label names the objects {sorted(names)}, but the clicks are on {sorted(clicks)}; give one per object.")
    frames = video if isinstance(video, VideoFrames) else VideoFrames(video)
    check_clicks(clicks, frames.size)
    if not isinstance(segmenter, VideoSegmenter):
        from lang_sam.families.loading import load_click_tracker

        segmenter = load_click_tracker(segmenter, device, dtype)
    return _follow(frames, clicks, names, segmenter)


def open_and_follow(video: VideoInput | VideoFrames, points, point_labels=None, label: str | Sequence[str] = CLICKED_LABEL,
                    segmenter: VideoSegmenter | str | Path | None = None, device: str | torch.device | None = None,
                    dtype: torch.dtype | str | None = None, **options) -> Iterator[TrackedFrame]:
    """follow_clicks with your clicks as LangSAM.predict takes them (clicked_objects), the video read
    between start and end seconds, every stride-th frame (options: those three only; the clicks are
    on the first frame read), and segmenter default DEFAULT_CLICK_TRACKER. What LangSAM.track runs
    with points."""
    unknown = sorted(set(options) - set(FRAME_OPTIONS))
    if unknown:
        raise InvalidOptionError(f"{', '.join(unknown)}: options of text tracking (a detector finds the objects); "
                                 f"clicked objects take {', '.join(FRAME_OPTIONS)} only.")
    clicks, names = clicked_objects(points, point_labels, label)
    frames = video if isinstance(video, VideoFrames) else VideoFrames(video, **options)
    return follow_clicks(frames, clicks, segmenter or DEFAULT_CLICK_TRACKER, device, dtype, names)


def _follow(frames: VideoFrames, clicks: dict[int, ObjectPrompt], names: dict[int, str],
            segmenter: VideoSegmenter) -> Iterator[TrackedFrame]:
    stream = segmenter.start(frames.size)
    for position, frame in enumerate(frames):
        masks = stream.add_frame(frame.image)
        if position == 0:
            masks = stream.add_clicks(clicks)
        objects = tuple(TrackedObject(object_id, names[object_id], CLICKED_SCORE, mask_to_box(masks[object_id]), masks[object_id])
                        for object_id in clicks if object_id in masks and masks[object_id].any())
        yield TrackedFrame(frame.index, frame.time, frame.image, objects)


def _depth(value) -> int:
    """How deeply value nests lists: 2 for one object's [[x, y], ...], 3 for a list of objects."""
    depth = 0
    while isinstance(value, (list, tuple)) and len(value):
        value, depth = value[0], depth + 1
    return depth + (value.ndim if isinstance(value, np.ndarray) else 0)
