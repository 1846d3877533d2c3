"""Tiles' Detections into one image's: shifted into image pixels with compact masks, objects cut by
tile borders joined.

The rule: two objects of the same class found in two tiles are one object when, over the pixels
both tiles saw (their overlap band), their masks overlap with an IoU of at least ``merge_iou``; the
object is then the union of their masks. Over the band both tiles saw the same pixels, so the two
views of one object agree there, however little of it each tile holds; outside the band they cannot
be compared (each saw what the other did not). Pairs are joined best IoU first, transitively (an
object across the corner of four tiles is one object), but an object holds at most one part from
each tile: a tile's objects are distinct by the pipeline's decision (two of its masks never become
one through a neighbour that saw them as one, nor does a chain of joins fuse them). No NMS across tiles follows: the duplicates a tiled
run makes are exactly the pairs this rule joins (the pipeline's own NMS works within a tile), and
NMS would keep one tile's cut mask where the union keeps the whole object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lang_sam.errors import InvalidOptionError
from lang_sam.geometry import mask_to_box
from lang_sam.tiling.windows import Window
from lang_sam.vocabulary.detections import Detections, compact_masks

MERGE_IOU = 0.5
OBJECT_ID_KEY = "object_id"  # Detections.data key of the ids 1..N, unique across the image (the label raster's values)


@dataclass(frozen=True)
class TileDetections:
    """One tile's objects in image pixels (compact masks, classes of the whole run) and the window the tile saw."""

    window: Window
    detections: Detections


def to_image(found: Detections, window: Window, image_size: tuple[int, int], classes: Sequence[str]) -> Detections:
    """A tile's Detections in image pixels: boxes shifted by the window's corner, masks kept compact
    (each cropped to its pixels, offset; never an image-sized array), class ids re-indexed into
    classes (the run's), only the fields every object has (per-tile data such as SAM's low-res
    logits is dropped)."""
    class_ids = None
    if found.class_ids is not None:
        class_ids = np.array([classes.index(name) for name in found.labels], np.int64)
    return Detections(
        xyxy=found.xyxy + np.array([window.left, window.top] * 2, np.float32), image_size=image_size,
        masks=found.compact().masks.with_offset(window.left, window.top, image_size),
        box_scores=found.box_scores, mask_scores=found.mask_scores, class_ids=class_ids,
        classes=tuple(classes) if class_ids is not None else (),
    )


def check_merge_iou(merge_iou: float) -> None:
    """Refuse a merge IoU outside (0, 1] (checked before any tile runs)."""
    if isinstance(merge_iou, bool) or not isinstance(merge_iou, (int, float)) or not 0 < merge_iou <= 1:
        raise InvalidOptionError(f"merge_iou must be a number in (0, 1], e.g. {MERGE_IOU}; got {merge_iou!r}.")


def merge_tiles(tiles: Sequence[TileDetections], image_size: tuple[int, int], merge_iou: float = MERGE_IOU) -> Detections:
    """One image's Detections from its tiles' (in image pixels, compact masks): objects joined by the
    module's rule, in the order first seen (tile by tile, each tile's own order), with
    data["object_id"] 1..N. A joined object's box is its union mask's, its box score the best of its
    parts', its mask score that of its largest part (the view that saw most of it)."""
    check_merge_iou(merge_iou)
    parts = [tile.detections for tile in tiles]
    owner = np.concatenate([np.full(len(found), index) for index, found in enumerate(parts)]) if parts else np.zeros(0, int)
    everything = _concatenate(parts, image_size)
    groups = _join(everything, owner, [tile.window for tile in tiles], merge_iou)
    unions = [_union(everything, members) for members in groups if len(members) > 1]
    combined = _concatenate([everything, *unions], image_size)
    positions = iter(range(len(everything), len(combined)))  # where each union sits in combined
    order = np.array([members[0] if len(members) == 1 else next(positions) for members in groups], np.intp)
    return replace(combined[order], data={OBJECT_ID_KEY: np.arange(1, len(order) + 1, dtype=np.int64)})


def _join(found: Detections, owner: np.ndarray, windows: Sequence[Window], merge_iou: float) -> list[list[int]]:
    """Groups of object indices that are one object: the pairs of neighbouring tiles' objects whose
    band IoU reaches merge_iou, joined best first unless the two groups hold parts from one tile;
    each group in index order, the groups in the order of their first member."""
    pairs = []
    for first, second in _neighbours(windows):
        band = windows[first].intersection(windows[second])
        for a, b in _candidates(found.xyxy, owner == first, owner == second, band):
            iou = _band_iou(found, a, b, band)
            if iou >= merge_iou:
                pairs.append((-iou, a, b))
    group = {index: [index] for index in range(len(found))}  # each object's group (shared lists)
    for _, a, b in sorted(pairs):
        if group[a] is not group[b] and not {int(owner[i]) for i in group[a]} & {int(owner[i]) for i in group[b]}:
            joined = group[a] + group[b]
            for index in joined:
                group[index] = joined
    groups = {id(members): sorted(members) for members in group.values()}
    return sorted(groups.values(), key=lambda members: members[0])


def _neighbours(windows: Sequence[Window]) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of tiles sharing pixels (one vectorised test of the later tiles per tile)."""
    if not windows:
        return []
    x0, y0, x1, y1 = np.array([window.xyxy for window in windows]).T
    pairs = []
    for i in range(len(windows)):
        later = np.flatnonzero((x0[i + 1:] < x1[i]) & (x1[i + 1:] > x0[i]) & (y0[i + 1:] < y1[i]) & (y1[i + 1:] > y0[i]))
        pairs.extend((i, i + 1 + int(j)) for j in later)
    return pairs


def _candidates(xyxy: np.ndarray, in_first: np.ndarray, in_second: np.ndarray, band: Window) -> list[tuple[int, int]]:
    """Pairs (a, b) of objects of two tiles whose boxes both reach into band and overlap each other:
    the only pairs whose masks can overlap there (a box test, so masks are decoded for these alone)."""
    reaches = (xyxy[:, 0] < band.left + band.width) & (xyxy[:, 2] > band.left) & \
              (xyxy[:, 1] < band.top + band.height) & (xyxy[:, 3] > band.top)
    firsts, seconds = np.flatnonzero(in_first & reaches), np.flatnonzero(in_second & reaches)
    a, b = xyxy[firsts][:, None], xyxy[seconds][None]
    overlap = (np.minimum(a[..., 2], b[..., 2]) > np.maximum(a[..., 0], b[..., 0])) & \
              (np.minimum(a[..., 3], b[..., 3]) > np.maximum(a[..., 1], b[..., 1]))
    return [(int(firsts[i]), int(seconds[j])) for i, j in zip(*np.nonzero(overlap))]


def _band_iou(found: Detections, a: int, b: int, band: Window) -> float:
    """The IoU over band of objects a and b (of two tiles sharing band); 0 for objects of two classes."""
    if found.class_ids is not None and found.class_ids[a] != found.class_ids[b]:
        return 0.0
    first, second = (_mask_in(found.masks, index, band) for index in (a, b))
    union = np.logical_or(first, second).sum()
    return float(np.logical_and(first, second).sum() / union) if union else 0.0


def _mask_in(masks, index: int, band: Window) -> np.ndarray:
    """(band.height, band.width) bool: the part of compact mask index inside band, decoded from its crop only."""
    canvas = np.zeros((band.height, band.width), bool)
    x0, y0 = (int(value) for value in masks.offsets[index])
    crop = masks.crop(index)
    area = Window(x0, y0, crop.shape[1], crop.shape[0]).intersection(band)
    if area is not None:
        canvas[area.top - band.top:area.top - band.top + area.height, area.left - band.left:area.left - band.left + area.width] = \
            crop[area.top - y0:area.top - y0 + area.height, area.left - x0:area.left - x0 + area.width]
    return canvas


def _union(found: Detections, members: list[int]) -> Detections:
    """One object of several parts: the union of their masks (on a canvas the size of their joint
    box, never the image's), box from the union, best box score, mask score of the largest part."""
    parts = found[members]
    masks = parts.masks
    x0, y0 = masks.offsets.min(axis=0)
    x1, y1 = masks.bbox_xyxy[:, 2:].max(axis=0) + 1  # supervision's boxes end on their last pixel
    canvas = np.zeros((int(y1 - y0), int(x1 - x0)), bool)
    for index in range(len(parts)):
        left, top = masks.offsets[index] - (x0, y0)
        crop = masks.crop(index)
        canvas[top:top + crop.shape[0], left:left + crop.shape[1]] |= crop
    largest = int(np.argmax(masks.area))
    return replace(parts[[largest]], xyxy=(mask_to_box(canvas) + np.array([x0, y0, x0, y0], np.float32))[None], box_scores=_best(parts.box_scores),
                   masks=_compact_crop(canvas, int(x0), int(y0), found.image_size))


def _best(scores: np.ndarray | None) -> np.ndarray | None:
    return None if scores is None else scores.max(keepdims=True)


def _compact_crop(crop: np.ndarray, left: int, top: int, image_size: tuple[int, int]):
    """A CompactMask of one mask given as a crop at (left, top) of an image_size image."""
    from supervision.detection.compact_mask import CompactMask

    return CompactMask.from_dense(crop[None], np.array([[0, 0, crop.shape[1] - 1, crop.shape[0] - 1]]), crop.shape).with_offset(
        left, top, image_size)


def _concatenate(parts: Sequence[Detections], image_size: tuple[int, int]) -> Detections:
    """Detections of the same image and classes, one after another (compact masks stay compact)."""
    if not parts:
        return Detections(xyxy=np.zeros((0, 4)), image_size=image_size, masks=compact_masks(np.zeros((0, *image_size), bool)))
    from supervision.detection.compact_mask import CompactMask

    first = parts[0]

    def joined(name: str):
        values = [getattr(part, name) for part in parts]
        return None if values[0] is None else np.concatenate(values)

    masks = CompactMask.merge([part.masks for part in parts])
    return Detections(xyxy=np.concatenate([part.xyxy for part in parts]), image_size=image_size, masks=masks,
                      box_scores=joined("box_scores"), mask_scores=joined("mask_scores"), class_ids=joined("class_ids"),
                      classes=first.classes)
