"""What a user gives a model besides text, in image pixels: ObjectPrompt names one object for a
promptable segmenter; Exemplars are boxes around examples of a concept (SAM 3: "more like this")."""

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


@dataclass(frozen=True, eq=False)
class Exemplars:
    """Boxes around examples of what to find in one image: every instance of the concept they show
    is found (with the text, or alone), not only the boxed ones; a negative box shows what is not it.

    boxes: (N, 4) float32 pixel xyxy; labels: (N,) int64, 1 for an example, 0 for a counter-example.
    """

    boxes: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        boxes, labels = pixel_boxes(self.boxes, "exemplars"), np.asarray(self.labels).reshape(-1)
        if len(labels) != len(boxes) or not np.isin(labels, (0, 1)).all():
            raise InvalidPromptError("Give each exemplar box one label, 1 (an example) or 0 (a counter-example).")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "labels", labels.astype(np.int64))

    @classmethod
    def of(cls, positive=None, negative=None) -> Exemplars | None:
        """Exemplars from (M, 4) example and (K, 4) counter-example boxes (either may be None or
        empty); None when there are none."""
        given = [(pixel_boxes(values, name), label) for values, name, label in
                 ((positive, "exemplars", 1), (negative, "negative_exemplars", 0)) if not _absent(values)]
        if not given:
            return None
        return cls(np.concatenate([boxes for boxes, _ in given]),
                   np.concatenate([np.full(len(boxes), label) for boxes, label in given]))

    @staticmethod
    def refused_by(model: str) -> InvalidPromptError:
        """The error for exemplar boxes given to a model that takes none (any but SAM 3's)."""
        return InvalidPromptError(f"{model} takes no exemplar boxes; SAM 3 does (sam_type=\"sam3\"). To segment the "
                                  "boxed objects themselves, give them as boxes.")

    @property
    def has_example(self) -> bool:
        """Whether one box is an example (counter-examples alone show no concept to look for)."""
        return bool((self.labels == 1).any())

    def check_inside(self, image_size: tuple[int, int]) -> None:
        """An InvalidPromptError when a box leaves the (H, W) image."""
        check_inside(self.boxes.reshape(-1, 2), image_size, "exemplar box corner")


def _absent(values) -> bool:
    """None or an empty list or array: no boxes of that kind."""
    return values is None or (hasattr(values, "__len__") and not len(values))


def pixel_boxes(values, name: str) -> np.ndarray:
    """values as (M, 4) float32 pixel xyxy boxes with x1 <= x2 and y1 <= y2, else the
    InvalidPromptError that says what is wrong."""
    boxes = finite_array(values, name)
    if not boxes.size or boxes.size % 4:
        raise InvalidPromptError(f"{name} must be (M, 4) x1, y1, x2, y2 in pixels, got shape {boxes.shape}.")
    boxes = boxes.reshape(-1, 4)
    bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if len(bad):
        raise InvalidPromptError(f"The box {boxes[bad[0]].tolist()} in {name} has x2 < x1 or y2 < y1; give x1, y1, x2, y2.")
    return boxes


def check_inside(xy: np.ndarray, image_size: tuple[int, int], what: str) -> None:
    """An InvalidPromptError naming the first of the (N, 2) pixel xy outside the (H, W) image."""
    height, width = image_size
    outside = np.flatnonzero((xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height))
    if len(outside):
        raise InvalidPromptError(f"The {what} {xy[outside[0]].tolist()} is outside the {width}x{height} image.")


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
