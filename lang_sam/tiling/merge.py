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
from lang_sam.tiling.windows import Window
from lang_sam.vocabulary.detections import Detections, compact_masks
from lang_sam.vocabulary.strips import column_spans, encode_strips

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
    """One image's Detections from its tiles' (in image pixels, compact masks, in the order they
    ran): TileMerger's objects, gathered."""
    merger = TileMerger([tile.window for tile in tiles], image_size, merge_iou)
    return gather([merger.add(tile.detections) for tile in tiles], image_size)


def gather(chunks: Sequence[Detections], image_size: tuple[int, int]) -> Detections:
    """TileMerger's chunks as one Detections (in memory: for images whose objects fit in it), named
    with the last chunk's classes (those of the whole run)."""
    chunks = list(chunks)
    classes = chunks[-1].classes if chunks and chunks[-1].class_ids is not None else None
    found = _concatenate(chunks, image_size, classes)
    ids = [chunk.data[OBJECT_ID_KEY] for chunk in chunks]
    return replace(found, data={OBJECT_ID_KEY: np.concatenate(ids) if ids else np.zeros(0, np.int64)})


class TileMerger:
    """Joins the objects of tiles given one at a time, in the order of their windows (row-major), by
    the module's rule, and gives back each object once it is finished: once no tile still to come
    can join it or anything joined to it (no later tile's overlap band with its tile reaches its
    box). So only the objects near the tiles running are held: memory grows with the image's
    width, not its area. Objects come out numbered 1, 2, ... in data["object_id"] in the order they
    are finished (those finished by one tile in the order first seen: tile by tile, each tile's own
    order); a joined object's box is its union mask's, its box score the best of its parts', its
    mask score that of its largest part (the view that saw most of it)."""

    def __init__(self, windows: Sequence[Window], image_size: tuple[int, int], merge_iou: float = MERGE_IOU) -> None:
        check_merge_iou(merge_iou)
        self.windows, self.image_size, self.merge_iou = list(windows), image_size, merge_iou
        self.added = 0  # tiles given so far
        self._edges = np.array([window.xyxy for window in self.windows]).reshape(-1, 4)
        self._held: dict[int, Detections] = {}  # held object number -> the object (alone: a finished one's tile-mates go)
        self._by_tile: dict[int, list[int]] = {}  # tile index -> the numbers of its held objects
        self._owner: dict[int, int] = {}  # held object number -> its tile's index
        self._closes: dict[int, int] = {}  # held object number -> the last tile that may join it
        self._group: dict[int, list[int]] = {}  # held object number -> the numbers it is joined to (shared lists)
        self._pairs: dict[int, list[tuple[float, int, int]]] = {}  # first number of a group -> its joinable pairs
        self._numbered, self._next_id = 0, 1
        self._empty: Detections | None = None  # no objects, with the fields of the tiles' (None before any)

    def add(self, found: Detections | None) -> Detections:
        """The next tile's objects (in image pixels, compact masks; None for a tile that did not
        run) in; the objects finished by it out (often none), with their ids."""
        if self.added >= len(self.windows):
            raise ValueError(f"TileMerger was given more tiles than its {len(self.windows)} windows.")
        index, self.added = self.added, self.added + 1
        if found is not None:
            self._empty = found[np.zeros(0, np.intp)]
            self._hold(index, found)
        finished = [members for members in self._groups() if max(self._closes[number] for number in members) <= index]
        return self._emit(finished)

    def _hold(self, index: int, found: Detections) -> None:
        """Keep a tile's objects, note the last tile that may join each, and join them with the held
        objects of earlier tiles sharing pixels with this one."""
        first = self._numbered
        numbers = range(first, first + len(found))
        self._numbered += len(found)
        if not len(found):
            return
        self._by_tile[index] = list(numbers)
        window = self.windows[index]
        for offset, number in enumerate(numbers):
            self._held[number], self._owner[number] = found[[offset]], index
            self._closes[number], self._group[number], self._pairs[number] = index, [number], []
        for later in self._neighbours(index, after=True):
            reaches = np.flatnonzero(_reaching(found.xyxy, window.intersection(self.windows[later])))
            for offset in reaches:
                self._closes[first + int(offset)] = later
        for earlier in self._neighbours(index, after=False):
            held = self._by_tile.get(earlier, [])  # those that reach into this tile are held still
            band = self.windows[earlier].intersection(window)
            boxes = np.array([self._held[number].xyxy[0] for number in held], np.float32).reshape(-1, 4)
            for a, b in _candidates(boxes, found.xyxy, band):
                iou = _band_iou(self._held[held[a]], 0, found, b, band)
                if iou >= self.merge_iou:
                    self._link(held[a], first + b, iou)

    def _neighbours(self, index: int, after: bool) -> list[int]:
        """The windows after (or before) index that share pixels with it (one vectorised test)."""
        x0, y0, x1, y1 = self._edges[index]
        others = self._edges[index + 1:] if after else self._edges[:index]
        sharing = np.flatnonzero((others[:, 0] < x1) & (others[:, 2] > x0) & (others[:, 1] < y1) & (others[:, 3] > y0))
        return [int(other) + (index + 1 if after else 0) for other in sharing]

    def _link(self, a: int, b: int, iou: float) -> None:
        """Note a joinable pair: its two objects are now in one group of pairs to settle together."""
        first_a, first_b = self._group[a][0], self._group[b][0]
        pairs = self._pairs.pop(first_a) + ([] if first_a == first_b else self._pairs.pop(first_b))
        members = sorted(set(self._group[a]) | set(self._group[b]))
        for number in members:
            self._group[number] = members
        self._pairs[members[0]] = [*pairs, (-iou, a, b)]

    def _groups(self) -> list[list[int]]:
        """The held objects' groups (objects linked by joinable pairs), each sorted, in order of their first."""
        return sorted({id(members): members for members in self._group.values()}.values(), key=lambda members: members[0])

    def _emit(self, finished: list[list[int]]) -> Detections:
        """The finished groups' objects (joined by the module's rule), numbered; then no longer held."""
        objects = sorted((members for group in finished for members in self._settle(group)), key=lambda members: members[0])
        parts = [self._held[members[0]] if len(members) == 1 else _union(self._objects(members)) for members in objects]
        for group in finished:
            del self._pairs[group[0]]
            for number in group:
                tile = self._owner.pop(number)
                del self._held[number], self._closes[number], self._group[number]
                self._by_tile[tile].remove(number)
                if not self._by_tile[tile]:
                    del self._by_tile[tile]
        found = _concatenate([part for part in (self._empty, *parts) if part is not None], self.image_size, self._classes())
        ids = np.arange(self._next_id, self._next_id + len(found), dtype=np.int64)
        self._next_id += len(found)
        return replace(found, data={OBJECT_ID_KEY: ids})

    def _settle(self, group: list[int]) -> list[list[int]]:
        """The objects a group of linked objects makes: pairs joined best band IoU first, unless the
        two sides already hold parts from one tile; each object's numbers sorted."""
        joined = {number: [number] for number in group}
        for _, a, b in sorted(self._pairs[group[0]]):
            if joined[a] is not joined[b] and not {self._owner[i] for i in joined[a]} & {self._owner[i] for i in joined[b]}:
                merged = joined[a] + joined[b]
                for number in merged:
                    joined[number] = merged
        return [sorted(members) for members in {id(members): members for members in joined.values()}.values()]

    def _objects(self, numbers: list[int]) -> Detections:
        return _concatenate([self._held[number] for number in numbers], self.image_size, self._classes())

    def _classes(self) -> tuple[str, ...] | None:
        """The run's classes so far (the latest tile's), None when its objects have none."""
        return None if self._empty is None or self._empty.class_ids is None else self._empty.classes


def _reaching(xyxy: np.ndarray, band: Window) -> np.ndarray:
    """Which pixel-edge boxes reach into band."""
    return (xyxy[:, 0] < band.left + band.width) & (xyxy[:, 2] > band.left) & \
           (xyxy[:, 1] < band.top + band.height) & (xyxy[:, 3] > band.top)


def _candidates(first: np.ndarray, second: np.ndarray, band: Window) -> list[tuple[int, int]]:
    """Pairs (a, b) of objects of two tiles (their boxes first and second) whose boxes both reach
    into band and overlap each other: the only pairs whose masks can overlap there (a box test, so
    masks are decoded for these alone)."""
    firsts, seconds = np.flatnonzero(_reaching(first, band)), np.flatnonzero(_reaching(second, band))
    a, b = first[firsts][:, None], second[seconds][None]
    overlap = (np.minimum(a[..., 2], b[..., 2]) > np.maximum(a[..., 0], b[..., 0])) & \
              (np.minimum(a[..., 3], b[..., 3]) > np.maximum(a[..., 1], b[..., 1]))
    return [(int(firsts[i]), int(seconds[j])) for i, j in zip(*np.nonzero(overlap))]


def _band_iou(first: Detections, a: int, second: Detections, b: int, band: Window) -> float:
    """The IoU over band of object a of first and object b of second (two tiles sharing band); 0
    for objects of two classes."""
    if first.class_ids is not None and first.class_ids[a] != second.class_ids[b]:
        return 0.0
    # Over the band's part holding both crops (no mask pixel lies outside it): a small pair costs its size, not the band's.
    area = band.intersection(_holding(np.stack([first.masks.bbox_xyxy[a], second.masks.bbox_xyxy[b]])))
    if area is None:
        return 0.0
    masks = _mask_in(first.masks, a, area), _mask_in(second.masks, b, area)
    union = np.logical_or(*masks).sum()
    return float(np.logical_and(*masks).sum() / union) if union else 0.0


def _holding(crops: np.ndarray) -> Window:
    """The smallest window holding crops, (N, 4) inclusive xyxy (supervision's: each ends on its last pixel)."""
    left, top = (int(value) for value in crops[:, :2].min(axis=0))
    right, bottom = (int(value) + 1 for value in crops[:, 2:].max(axis=0))
    return Window(left, top, right - left, bottom - top)


def _mask_in(masks, index: int, band: Window) -> np.ndarray:
    """(band.height, band.width) bool: the part of compact mask index inside band, decoded from its crop only."""
    canvas = np.zeros((band.height, band.width), bool)
    _paste(canvas, band, masks, index)
    return canvas


def _paste(canvas: np.ndarray, at: Window, masks, index: int) -> None:
    """OR into canvas (the pixels of window at) the part of compact mask index inside it (its crop
    decoded only when it reaches there)."""
    held = _holding(masks.bbox_xyxy[[index]])  # the crop's window
    area = held.intersection(at)
    if area is not None:
        crop = masks.crop(index)
        canvas[area.top - at.top:area.top - at.top + area.height, area.left - at.left:area.left - at.left + area.width] |= \
            crop[area.top - held.top:area.top - held.top + area.height, area.left - held.left:area.left - held.left + area.width]


def _union(parts: Detections) -> Detections:
    """One object of several parts: the union of their masks, built a column strip of their joint
    box at a time (an object joined across a raster has a box the raster's size: memory follows the
    strip, never the box), its box from the union's pixels, best box score, mask score of the
    largest part."""
    masks = parts.masks
    box = _holding(masks.bbox_xyxy)  # the parts' crops: the union's crop
    filled = []  # (x0, y0, x1, y1) of each strip's pixels, in image pixels

    def strips():
        for first, columns in column_spans(box.height, box.width):
            left = box.left + first
            strip = _strip_of(masks, left, box.top, box.height, columns)
            rows, used = np.flatnonzero(strip.any(axis=1)), np.flatnonzero(strip.any(axis=0))
            if len(rows):
                filled.append((left + used[0], box.top + rows[0], left + used[-1] + 1, box.top + rows[-1] + 1))
            yield strip

    mask = encode_strips(strips(), (box.left, box.top), parts.image_size)
    edges = np.array(filled)
    xyxy = np.array([[edges[:, 0].min(), edges[:, 1].min(), edges[:, 2].max(), edges[:, 3].max()]], np.float32)
    largest = int(np.argmax(masks.area))
    return replace(parts[[largest]], xyxy=xyxy, box_scores=_best(parts.box_scores), masks=mask)


def _strip_of(masks, left: int, top: int, height: int, columns: int) -> np.ndarray:
    """(height, columns) bool: the union of the compact masks over the columns left.. of rows top.."""
    strip, area = np.zeros((height, columns), bool), Window(left, top, columns, height)
    for index in range(len(masks)):
        _paste(strip, area, masks, index)
    return strip


def _best(scores: np.ndarray | None) -> np.ndarray | None:
    return None if scores is None else scores.max(keepdims=True)


def _concatenate(parts: Sequence[Detections], image_size: tuple[int, int], classes: tuple[str, ...] | None) -> Detections:
    """Detections of the same image, one after another (compact masks stay compact), named with
    classes (the run's: each part's are the first of them; None when the objects have none)."""
    if not parts:
        return Detections(xyxy=np.zeros((0, 4)), image_size=image_size, masks=compact_masks(np.zeros((0, *image_size), bool)))
    from supervision.detection.compact_mask import CompactMask

    def joined(name: str):
        values = [getattr(part, name) for part in parts]
        return None if values[0] is None else np.concatenate(values)

    masks = CompactMask.merge([part.masks for part in parts])
    return Detections(xyxy=np.concatenate([part.xyxy for part in parts]), image_size=image_size, masks=masks,
                      box_scores=joined("box_scores"), mask_scores=joined("mask_scores"), class_ids=joined("class_ids"),
                      classes=classes or ())
