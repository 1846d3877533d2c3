"""ObjectPrompt: what names one object for a promptable segmenter, in image pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lang_sam.errors import InvalidPromptError


@dataclass(frozen=True, eq=False)
class ObjectPrompt:
    """One object: a box, points with labels, a previous mask's logits, or a combination.

    box: (4,) float32 pixel xyxy, or None;
    points: (N, 2) float32 pixel xy, or None;
    labels: (N,) int64, 1 for a point on the object, 0 for one on the background (with points only);
    mask_logits: (256, 256) float32 low-res logits of an earlier mask of this object, or None.
    A box or points must be given: there is no placeholder box for an object named by clicks.
    """

    box: np.ndarray | None = None
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    mask_logits: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.box is None and self.points is None:
            raise InvalidPromptError("An object prompt needs a box or points.")
        if self.box is not None:
            box = finite_array(self.box, "box", (4,))
            if box[2] < box[0] or box[3] < box[1]:
                raise InvalidPromptError(f"The box {box.tolist()} has x2 < x1 or y2 < y1; give x1, y1, x2, y2.")
            object.__setattr__(self, "box", box)
        if (self.points is None) != (self.labels is None):
            raise InvalidPromptError("Points and their labels go together: give both or neither.")
        if self.points is not None:
            points, labels = finite_array(self.points, "points", (-1, 2)), np.asarray(self.labels).reshape(-1)
            if not len(points) or len(points) != len(labels) or not np.isin(labels, (0, 1)).all():
                raise InvalidPromptError("Give one or more points, with one label each, 1 (object) or 0 (background).")
            object.__setattr__(self, "points", points)
            object.__setattr__(self, "labels", labels.astype(np.int64))
        if self.mask_logits is not None:
            object.__setattr__(self, "mask_logits", finite_array(self.mask_logits, "mask_logits", (256, 256)))

    @property
    def is_box_only(self) -> bool:
        """A box and nothing else: such objects decode together in one batch."""
        return self.points is None and self.mask_logits is None



def finite_array(values, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """values as finite float32, reshaped to shape when given (one -1 allowed), else the
    InvalidPromptError that says what is wrong (every prompt check reads numbers this way)."""
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidPromptError(f"{name} must be numbers, got {values!r}.") from None
    if shape is not None:
        try:
            array = array.reshape(shape)
        except ValueError:
            raise InvalidPromptError(f"{name} must be numbers of shape {shape}, got {np.shape(values)}.") from None
    if not np.isfinite(array).all():
        raise InvalidPromptError(f"{name} must be finite numbers, got {array.tolist()}.")
    return array
