"""Thresholds: what a detection keeps, its defaults written once and checked on construction, so
that the library, the CLI, the app and the server default and check them one way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lang_sam.errors import InvalidOptionError

BOX_THRESHOLD = 0.3  # Grounding DINO's demo values, which lang-segment-anything kept
TEXT_THRESHOLD = 0.25


def check_threshold(name: str, value: float) -> None:
    """A threshold between 0 and 1, else the InvalidOptionError that says so."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value <= 1:
        raise InvalidOptionError(f"{name} must be a number between 0 and 1, got {value!r}.")


def check_max_lost(max_lost: int) -> None:
    """Refuse a max_lost that is not a whole number of frames >= 1."""
    if isinstance(max_lost, bool) or not isinstance(max_lost, int) or max_lost < 1:
        raise InvalidOptionError(f"max_lost must be a whole number >= 1 (frames a track may go unseen), got {max_lost!r}.")


@dataclass(frozen=True)
class Thresholds:
    """What a detection keeps, checked when made, so a bad value fails before any model loads.

    box: the lowest box score kept (0 to 1);
    text: the lowest score of a box's label words (0 to 1; detectors that score whole classes ignore it);
    nms_iou: when set, a box of a class overlapping a better one of that class more than this is dropped;
    max_detections: when set, only this many of the best boxes are kept per image (0 keeps none).
    """

    box: float = BOX_THRESHOLD
    text: float = TEXT_THRESHOLD
    nms_iou: float | None = None
    max_detections: int | None = None

    def __post_init__(self) -> None:
        check_threshold("box_threshold", self.box)
        check_threshold("text_threshold", self.text)
        if self.nms_iou is not None:
            check_threshold("nms_iou_threshold", self.nms_iou)
        count = self.max_detections
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise InvalidOptionError(f"max_detections must be a whole number >= 0, got {count!r}.")
