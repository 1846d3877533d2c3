"""Detections: the objects found in one image, the result type lang-sam's compositions speak (LangSAM,
segment-everything and tracked frames give it; the detectors', SAM 3's and the segmenters' own
types convert to it at one place each).

Shaped like supervision's ``Detections`` (one validated set of per-object arrays, ``len()`` the
count, boolean and integer indexing filter), with the names lang-sam's models need: box scores
(the detector's) apart from mask scores (the segmenter's predicted IoU), class ids into the user's
classes, tracker ids for video. Masks are either dense ``(N, H, W)`` bool arrays or supervision's
``CompactMask`` (each mask run-length encoded inside its own bounding box), so a result for a very
large image need not hold one full-size array per object. ``to_supervision`` and
``from_supervision`` convert losslessly.

supervision is imported only when a compact mask or a conversion is asked for: the CLI starts
without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lang_sam.errors import InvalidOptionError

# supervision's data keys that hold what Detections keeps in its own fields.
CLASS_NAME_KEY = "class_name"
MASK_SCORE_KEY = "mask_score"
# supervision's metadata keys that carry what a per-object array cannot: the class list and image size.
CLASSES_KEY = "classes"
IMAGE_SIZE_KEY = "image_size"


@dataclass(frozen=True, eq=False)
class Detections:
    """N objects in one (H, W) image, in the order their producer ranks them (best first).

    xyxy: (N, 4) float32 pixel boxes, x0 <= x1 and y0 <= y1, edges at pixel edges (a mask's box
        ends one past its last pixel, as lang_sam.geometry computes it);
    masks: (N, H, W) bool, a supervision CompactMask of N masks, or None when only boxes were found;
    box_scores: (N,) float32 the detector's score of each box (1.0 for a box or click you gave);
    mask_scores: (N,) float32 the segmenter's predicted IoU of each mask, or None without masks;
    class_ids: (N,) int64 index of each object's class in ``classes``;
    classes: the class names the ids index (the user's classes, in the order given);
    tracker_ids: (N,) int64 ids that persist from frame to frame in a video, or None;
    data: more per-object arrays (each of length N), e.g. low-res logits, stability scores;
    image_size: (H, W) of the image the boxes and masks are in.
    Every field is checked on construction; a NaN score or a class id outside ``classes`` is an error.
    """

    xyxy: np.ndarray
    image_size: tuple[int, int]
    masks: Any = None
    box_scores: np.ndarray | None = None
    mask_scores: np.ndarray | None = None
    class_ids: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    tracker_ids: np.ndarray | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise InvalidOptionError(f"Detections.xyxy must be (N, 4) pixel boxes, got shape {xyxy.shape}.")
        count = len(xyxy)
        set_field(self, "xyxy", xyxy)
        set_field(self, "image_size", _checked_size(self.image_size))
        set_field(self, "classes", tuple(str(name) for name in self.classes))
        set_field(self, "masks", _checked_masks(self.masks, count, self.image_size))
        set_field(self, "box_scores", _checked_per_object("box_scores", self.box_scores, count, np.float32))
        set_field(self, "mask_scores", _checked_per_object("mask_scores", self.mask_scores, count, np.float32))
        set_field(self, "class_ids", _checked_per_object("class_ids", self.class_ids, count, np.int64))
        set_field(self, "tracker_ids", _checked_per_object("tracker_ids", self.tracker_ids, count, np.int64))
        set_field(self, "data", _checked_data(self.data, count))
        if not np.isfinite(xyxy).all() or (xyxy[:, 2:] < xyxy[:, :2]).any():
            raise InvalidOptionError("Detections.xyxy must be finite pixel boxes with x0 <= x1 and y0 <= y1.")
        if self.class_ids is not None and count and not (0 <= self.class_ids.min() and self.class_ids.max() < len(self.classes)):
            raise InvalidOptionError(
                f"Detections.class_ids must index classes ({len(self.classes)} names), got {self.class_ids.tolist()}.")

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: int | slice | list | np.ndarray) -> Detections:
        """The objects the index picks, as Detections: an integer keeps one, a slice, integer array or
        boolean array of length N keeps those, in that order."""
        if isinstance(index, (bool, np.bool_)):
            raise TypeError("Detections are indexed by an integer, slice or array, not a bool")
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= index < len(self):
                raise IndexError(f"object {index} of {len(self)}")
            index = [int(index)]
        elif isinstance(index, (list, np.ndarray)):
            index = np.asarray(index) if len(index) else np.zeros(0, np.intp)
            if index.dtype == bool and index.shape != (len(self),):
                raise IndexError(f"a boolean index must have one value per object ({len(self)}), got shape {index.shape}")
        elif not isinstance(index, slice):
            raise TypeError(f"Detections are indexed by an integer, slice or array, got {type(index).__name__}")

        def pick(values: Any) -> Any:
            return None if values is None else values[index]

        return Detections(
            xyxy=self.xyxy[index], image_size=self.image_size, masks=pick(self.masks),
            box_scores=pick(self.box_scores), mask_scores=pick(self.mask_scores), class_ids=pick(self.class_ids),
            classes=self.classes, tracker_ids=pick(self.tracker_ids),
            data={key: _pick_data(values, index) for key, values in self.data.items()},
        )

    @property
    def labels(self) -> list[str]:
        """The class name of each object (empty strings when the objects have no classes)."""
        if self.class_ids is None:
            return [""] * len(self)
        return [self.classes[index] for index in self.class_ids.tolist()]

    @property
    def is_compact(self) -> bool:
        """Whether the masks are held as a CompactMask rather than a dense array."""
        return self.masks is not None and not isinstance(self.masks, np.ndarray)

    def dense_masks(self) -> np.ndarray:
        """(N, H, W) bool masks, decoded when held compactly; (N, H, W) all False when there are none."""
        if self.masks is None:
            return np.zeros((len(self), *self.image_size), bool)
        return self.masks if isinstance(self.masks, np.ndarray) else self.masks.to_dense()

    def compact(self) -> Detections:
        """These detections with their masks held as a CompactMask (the same pixels)."""
        if self.masks is None or self.is_compact:
            return self
        return self.with_masks(compact_masks(self.masks))

    def with_masks(self, masks: Any, mask_scores: np.ndarray | None = None) -> Detections:
        """The same objects with other masks (and mask scores, kept when not given)."""
        return replace(self, masks=masks, mask_scores=self.mask_scores if mask_scores is None else mask_scores)

    def to_supervision(self):
        """supervision.Detections holding the same values: box scores as confidence, class names in
        data["class_name"], mask scores in data["mask_score"], classes and image size in metadata
        (so supervision's merge joins only detections of the same classes and image size)."""
        import supervision as sv

        data = dict(self.data)
        if self.class_ids is not None:
            data[CLASS_NAME_KEY] = np.array(self.labels, dtype=object)
        if self.mask_scores is not None:
            data[MASK_SCORE_KEY] = self.mask_scores
        return sv.Detections(
            xyxy=self.xyxy, mask=self.masks, confidence=self.box_scores, class_id=self.class_ids,
            tracker_id=self.tracker_ids, data=data,
            metadata={CLASSES_KEY: list(self.classes), IMAGE_SIZE_KEY: self.image_size},
        )

    @classmethod
    def from_supervision(cls, detections, image_size: tuple[int, int] | None = None,
                         classes: list[str] | tuple[str, ...] | None = None) -> Detections:
        """Detections from a supervision.Detections: what to_supervision wrote comes back unchanged.

        One made elsewhere needs its image size (from metadata, its masks, or ``image_size``) and, to
        name classes, ``classes`` or data["class_name"] (the names of class ids never seen are "")."""
        metadata = getattr(detections, "metadata", {}) or {}
        data = dict(detections.data)
        names = data.pop(CLASS_NAME_KEY, None)
        mask_scores = data.pop(MASK_SCORE_KEY, None)
        size = image_size or metadata.get(IMAGE_SIZE_KEY) or _mask_size(detections.mask)
        if size is None:
            raise InvalidOptionError("Detections.from_supervision needs image_size=(H, W): the detections hold no masks or metadata saying it.")
        classes = classes if classes is not None else metadata.get(CLASSES_KEY)
        if classes is None and detections.class_id is not None:
            classes = _classes_from_names(detections.class_id, [""] * len(detections) if names is None else names)
        return cls(
            xyxy=detections.xyxy, image_size=tuple(size), masks=detections.mask,
            box_scores=detections.confidence, mask_scores=mask_scores, class_ids=detections.class_id,
            classes=tuple(classes or ()), tracker_ids=detections.tracker_id, data=data,
        )


def compact_masks(masks: np.ndarray):
    """A supervision CompactMask of (N, H, W) bool masks, each cropped to its own pixels (so no pixel
    is lost, whatever the detection's box)."""
    from supervision.detection.compact_mask import CompactMask

    masks = np.asarray(masks, dtype=bool)
    boxes = np.tile(np.array([0, 0, -1, -1], np.float32), (len(masks), 1))  # an empty mask: a 1x1 empty crop
    for index, mask in enumerate(masks):
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows):
            boxes[index] = columns[0], rows[0], columns[-1], rows[-1]  # supervision's inclusive xyxy
    return CompactMask.from_dense(masks, boxes, image_shape=masks.shape[1:])


def _checked_size(size: Any) -> tuple[int, int]:
    try:
        height, width = size
    except (TypeError, ValueError):
        raise InvalidOptionError(f"Detections.image_size must be (height, width), got {size!r}.") from None
    if any(isinstance(value, bool) or int(value) != value for value in (height, width)) or height < 0 or width < 0:
        raise InvalidOptionError(f"Detections.image_size must be whole numbers >= 0, got {size!r}.")
    return int(height), int(width)


def _checked_masks(masks: Any, count: int, image_size: tuple[int, int]) -> Any:
    """Dense masks as a bool array, or a CompactMask as it is; either N masks of image size."""
    if masks is None:
        return None
    if isinstance(masks, (np.ndarray, list, tuple)):
        masks = np.asarray(masks)
        if masks.dtype != bool:
            if not np.isin(masks, (0, 1)).all():
                raise InvalidOptionError("Detections.masks must be bool (or 0/1) arrays.")
            masks = masks.astype(bool)
        shape = masks.shape
    else:
        from supervision.detection.compact_mask import CompactMask

        if not isinstance(masks, CompactMask):
            raise InvalidOptionError(f"Detections.masks must be a bool array or a supervision CompactMask, got {type(masks).__name__}.")
        shape = masks.shape  # (N, H, W) without decoding
    if tuple(shape) != (count, *image_size):
        raise InvalidOptionError(f"Detections.masks must be (N, H, W) = {(count, *image_size)}, got {tuple(shape)}.")
    return masks


def _checked_per_object(name: str, values: Any, count: int, dtype: type) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values)
    if array.shape != (count,):
        raise InvalidOptionError(f"Detections.{name} must hold one value per object ({count}), got shape {array.shape}.")
    if dtype is np.int64 and array.size and not np.issubdtype(array.dtype, np.integer):
        raise InvalidOptionError(f"Detections.{name} must be whole numbers, got {array.dtype}.")
    array = array.astype(dtype, copy=False)
    if dtype is np.float32 and not np.isfinite(array).all():
        raise InvalidOptionError(f"Detections.{name} must be finite numbers (no NaN placeholders), got {array.tolist()}.")
    return array


def _checked_data(data: Mapping[str, Any], count: int) -> dict[str, Any]:
    checked = {}
    for key, values in data.items():
        if key in (CLASS_NAME_KEY, MASK_SCORE_KEY):
            raise InvalidOptionError(f"Detections.data may not hold {key!r}: it is a field of Detections (labels, mask_scores).")
        if not hasattr(values, "__len__") or len(values) != count:
            raise InvalidOptionError(f"Detections.data[{key!r}] must hold one value per object ({count}), got {values!r:.80}.")
        checked[key] = values
    return checked


def _pick_data(values: Any, index: Any) -> Any:
    if isinstance(values, np.ndarray):
        return values[index]
    picked = np.arange(len(values))[index]
    return [values[position] for position in picked.tolist()]


def _mask_size(masks: Any) -> tuple[int, int] | None:
    return None if masks is None else tuple(int(value) for value in masks.shape[1:])


def _classes_from_names(class_ids: np.ndarray, names: Any) -> list[str]:
    """Class names by id from per-object names: ids never seen are named ""."""
    classes = [""] * (int(class_ids.max()) + 1 if len(class_ids) else 0)
    for class_id, name in zip(class_ids.tolist(), names):
        classes[class_id] = str(name)
    return classes
