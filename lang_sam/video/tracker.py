"""Text-prompted video tracking: detect, segment, propagate, associate, frame by frame.

The detector runs on the first frame and every redetect_every frames after; its boxes become
masks on that frame (the video segmenter's image path, no memory). Between detections the video
segmenter (SAM 2.1 video) carries every tracked object's mask to the next frame with its memory.
On each detection frame association.associate pairs detections with the tracks by mask IoU: a
detection that matches none starts a track (prompted with its box), one that matches a track the
segmenter had lost prompts that track again, and a track unseen for max_lost frames ends and is
dropped from the segmenter. Nothing is kept per frame but the current masks of the live tracks.

A concept tracker (SAM 3 video, families/base.ConceptTracker) does all of that itself from the
text: then no detector loads and the frames are its own, mapped to the same TrackedFrame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lang_sam.detector.prompts import parse_classes
from lang_sam.errors import InvalidOptionError
from lang_sam.families.base import ConceptTracker, Detector, TrackedFrame, TrackedObject, VideoSegmenter
from lang_sam.geometry import mask_to_box
from lang_sam.video.association import Track, associate, check_association_options
from lang_sam.video.frames import VideoFrames, VideoInput
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD, check_threshold


def track(
    video: VideoInput | VideoFrames,
    classes: str | Sequence[str],
    detector: Detector | Callable[[], Detector],
    segmenter: VideoSegmenter | ConceptTracker,
    redetect_every: int = 10,
    max_lost: int = 30,
    iou_threshold: float = 0.5,
    box_threshold: float = BOX_THRESHOLD,
    text_threshold: float = TEXT_THRESHOLD,
) -> Iterator[TrackedFrame]:
    """Track every object of the classes through video, yielding one TrackedFrame per frame read.

    video: a file, an image folder, arrays (read whole) or VideoFrames (for start, end, stride);
    classes: "car, person" or a list of class names; redetect_every: run the detector every N
    frames read (1: every frame); max_lost: frames a track may go unseen before it ends;
    iou_threshold: the mask IoU at which a detection continues a track. detector: one, or a function
    that loads one (called only when the segmenter needs a detector).

    With a concept tracker (SAM 3 video) no detector is used: it detects on every frame and keeps
    its own ids, so redetect_every, iou_threshold and text_threshold do not apply; box_threshold is
    the score an object needs to be reported, and an object unreported for max_lost frames ends.
    """
    names = parse_classes(classes) if isinstance(classes, str) else list(classes)
    if not names:
        raise InvalidOptionError('Name what to track, e.g. "car, person".')
    check_track_options(redetect_every=redetect_every, max_lost=max_lost, iou_threshold=iou_threshold,
                        box_threshold=box_threshold, text_threshold=text_threshold)
    frames = video if isinstance(video, VideoFrames) else VideoFrames(video)
    if isinstance(segmenter, ConceptTracker):
        return segmenter.track_concepts(frames, names, score_threshold=box_threshold, max_lost=max_lost)
    detector = detector if hasattr(detector, "detect") else detector()
    return _track(frames, names, detector, segmenter, redetect_every, max_lost, iou_threshold, box_threshold, text_threshold)


def check_track_options(redetect_every: int = 10, max_lost: int = 30, iou_threshold: float = 0.5,
                        box_threshold: float = BOX_THRESHOLD, text_threshold: float = TEXT_THRESHOLD) -> None:
    """Refuse track()'s options that are out of range, each with what it means. They need no model:
    the CLI, the app and the server call this before any model loads (defaults stand in for the
    options a caller does not have)."""
    if isinstance(redetect_every, bool) or not isinstance(redetect_every, int) or redetect_every < 1:
        raise InvalidOptionError(f"redetect_every must be a whole number of frames >= 1 (1: detect on every frame), "
                                 f"got {redetect_every!r}.")
    check_association_options(iou_threshold, max_lost)
    check_threshold("box_threshold", box_threshold)
    check_threshold("text_threshold", text_threshold)


def open_and_track(
    video: VideoInput | VideoFrames,
    classes: str | Sequence[str],
    detector: Detector | Callable[[], Detector],
    segmenter: VideoSegmenter | ConceptTracker | str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    start: float = 0.0,
    end: float | None = None,
    stride: int = 1,
    **options,
) -> Iterator[TrackedFrame]:
    """track() with the video read between start and end seconds, every stride-th frame, and the
    segmenter loaded when given by name: a SAM 2.1, EdgeTAM or SAM 3 registry name, a Sam2VideoModel,
    EdgeTamVideoModel or Sam3VideoModel folder or repo id (default sam2.1-hiera-tiny), on device in dtype. What
    LangSAM.track runs."""
    frames = video if isinstance(video, VideoFrames) else VideoFrames(video, start=start, end=end, stride=stride)
    if segmenter is None or isinstance(segmenter, (str, Path)):
        from lang_sam.families.loading import load_video_segmenter

        name = None if segmenter is None or Path(segmenter).is_dir() else str(segmenter)
        folder = segmenter if segmenter is not None and Path(segmenter).is_dir() else None
        segmenter = load_video_segmenter(name, folder, device, dtype)
    return track(frames, classes, detector, segmenter, **options)


def _track(frames: VideoFrames, classes: list[str], detector: Detector, segmenter: VideoSegmenter, redetect_every: int,
           max_lost: int, iou_threshold: float, box_threshold: float, text_threshold: float) -> Iterator[TrackedFrame]:
    height, width = frames.size
    stream = segmenter.start(frames.size)
    tracks: tuple[Track, ...] = ()
    next_id = 1
    for position, frame in enumerate(frames):
        current = stream.add_frame(frame.image)
        boxes = np.zeros((0, 4), np.float32)
        labels: list[str] = []
        scores: list[float] = []
        if position % redetect_every == 0:
            found = detector.detect([Image.fromarray(frame.image)], [classes], box_threshold=box_threshold,
                                    text_threshold=text_threshold)[0]
            boxes, labels, scores = found.xyxy, found.labels, found.box_scores.tolist()
        masks = stream.segment_boxes(boxes) if len(boxes) else np.zeros((0, height, width), bool)
        result = associate(tracks, masks, labels, scores, next_id, current=current,
                           iou_threshold=iou_threshold, max_lost=max_lost)
        if result.ended:
            stream.remove_objects(result.ended)
        lost_by_model = {track_id: column for track_id, column in result.matched if not _present(current.get(track_id))}
        prompts = {track_id: boxes[column] for track_id, column in (*result.started, *lost_by_model.items())}
        if prompts:
            current = {**current, **stream.add_objects(prompts)}
        tracks, next_id = result.tracks, result.next_id
        objects = tuple(
            TrackedObject(item.id, item.label, item.score, mask_to_box(current[item.id]), current[item.id])
            for item in tracks if _present(current.get(item.id))
        )
        yield TrackedFrame(frame.index, frame.time, frame.image, objects)


def draw_tracked(frame: TrackedFrame) -> np.ndarray:
    """The frame with each object's mask, box and "#id label" drawn in its track's colour (a new image)."""
    import supervision as sv

    image = frame.image.copy()  # supervision draws in place
    if not frame.objects:
        return image
    detections = frame.detections.to_supervision()
    labels = [f"#{item.id} {item.label}" for item in frame.objects]
    lookup = sv.ColorLookup.TRACK
    image = sv.MaskAnnotator(color_lookup=lookup).annotate(image, detections)
    image = sv.BoxAnnotator(color_lookup=lookup, thickness=1).annotate(image, detections)
    return sv.LabelAnnotator(color_lookup=lookup, text_scale=0.4, text_padding=2).annotate(image, detections, labels=labels)


def _present(mask: np.ndarray | None) -> bool:
    return mask is not None and bool(mask.any())
