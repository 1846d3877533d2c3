"""Video: frames read lazily (frames.py), detections matched to tracks (association.py), the
detect-then-propagate tracker over a video segmenter (tracker.py) and clicked objects followed
through a video (clicks.py); track_video, what LangSAM.track runs, picks between the last two."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from lang_sam.errors import InvalidPromptError

if TYPE_CHECKING:
    import torch

    from lang_sam.families.base import Detector, TrackedFrame


def track_video(video, prompt: str | None, detector: Callable[[], Detector], video_segmenter=None,
                device: str | torch.device | None = None, dtype: torch.dtype | str | None = None, *, points=None,
                point_labels=None, label="object", **options) -> Iterator[TrackedFrame]:
    """Track what prompt names through a video (tracker.open_and_track: detector gives the boxes, a
    SAM 2.1, EdgeTAM or SAM 3 video model follows them, or SAM 3 video alone; video_segmenter: a
    loaded one, a name, a Sam2VideoModel, EdgeTamVideoModel or Sam3VideoModel folder or repo id;
    default sam2.1-hiera-tiny; options: start, end, stride (frames.VideoFrames) and those of
    tracker.track), or follow the objects clicked on the first frame read (clicks.open_and_follow:
    points and point_labels for one object, or a list of those, one per object (ids 1, 2, ...);
    label: their class name, or one per object; video_segmenter: SAM 3 (the default), SAM 2.1 or
    EdgeTAM video; options: start, end, stride). One or the other: a prompt or clicks."""
    if points is None and point_labels is None:
        if prompt is None:
            raise InvalidPromptError("track needs a prompt naming what to track, e.g. \"car, person\", or points clicked on the first frame.")
        from lang_sam.video.tracker import open_and_track

        return open_and_track(video, prompt, detector, video_segmenter, device, dtype, **options)
    if prompt is not None:
        raise InvalidPromptError("track follows a text prompt or your clicks, one or the other in one call.")
    from lang_sam.video.clicks import open_and_follow

    return open_and_follow(video, points, point_labels, label, video_segmenter, device, dtype, **options)
