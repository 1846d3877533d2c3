"""Compact masks of any size, one column strip at a time: an object joined across a whole raster (a
road, a river) has a crop the size of its box (20,000 x 20,000 pixels: 400 MB as bool), far more
than the run-length encoding that holds it. These decode and build such a mask a strip of at most
STRIP_PIXELS at a time, so that memory follows the strip, not the object.

supervision's CompactMask stores each crop as column-major (COCO's pixel order) run lengths,
background first (its class documentation); it decodes only whole crops, so decode_strips reads
those runs itself (masks._rles), and encode_strips hands its runs to CompactMask's constructor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

STRIP_PIXELS = 1 << 24  # 16 M pixels (16 MB as bool): the most of one mask held decoded at once


def column_spans(height: int, width: int, pixels: int | None = None) -> list[tuple[int, int]]:
    """(first column, columns) of the strips a (height, width) crop is cut into: at most pixels each
    (default STRIP_PIXELS; at least one column), left to right; one strip when the whole crop fits."""
    step = max(1, (pixels or STRIP_PIXELS) // max(1, height))
    return [(first, min(step, width - first)) for first in range(0, width, step)]


def decode_strips(masks, index: int, pixels: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Mask index of a CompactMask, strip by strip: (first column in its crop, (crop height, columns)
    bool); a crop that fits in one strip is decoded by CompactMask.crop itself."""
    x0, y0, x1, y1 = (int(value) for value in masks.bbox_xyxy[index])  # the crop's, inclusive
    height, width = y1 - y0 + 1, x1 - x0 + 1
    spans = column_spans(height, width, pixels)
    if len(spans) == 1:
        yield 0, masks.crop(index)
        return
    ends = np.cumsum(masks._rles[index], dtype=np.int64)
    starts, stops = ends[:-1:2], ends[1::2]  # each foreground run: [start, stop) in column-major order
    for first, columns in spans:
        low, high = first * height, (first + columns) * height
        runs = slice(np.searchsorted(stops, low, side="right"), np.searchsorted(starts, high, side="left"))
        edges = np.zeros(high - low + 1, np.int8)  # +1 where a run starts, -1 past its end (runs never overlap)
        np.add.at(edges, np.clip(starts[runs], low, high) - low, 1)
        np.add.at(edges, np.clip(stops[runs], low, high) - low, -1)
        yield first, np.cumsum(edges[:-1], dtype=np.int8).view(bool).reshape(columns, height).T


def encode_strips(strips: Iterable[np.ndarray], offset: tuple[int, int], image_size: tuple[int, int]):
    """One CompactMask from a crop given as consecutive column strips ((crop height, columns) bool,
    left to right), its crop at offset (left, top) of an image_size (H, W) image."""
    from supervision.detection.compact_mask import CompactMask

    changes, seen, previous, height, width = [], 0, False, None, 0
    for strip in strips:
        height, width = strip.shape[0], width + strip.shape[1]
        flat = np.ascontiguousarray(strip.T).ravel()  # column-major
        if not len(flat):
            continue
        at = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        if flat[0] != previous:
            at = np.concatenate([[0], at])
        changes.append(at.astype(np.int64) + seen)
        seen, previous = seen + len(flat), bool(flat[-1])
    counts = np.diff(np.concatenate([[0], *changes, [seen]]))
    return CompactMask([_int32_runs(counts)], np.array([[height or 0, width]], np.int32), np.array([offset], np.int32), image_size)


def _int32_runs(counts: np.ndarray) -> np.ndarray:
    """Run lengths as CompactMask's int32, a run over 2**31 - 1 pixels split by zero-length runs of
    the other value (as supervision does)."""
    limit = np.iinfo(np.int32).max
    if not len(counts) or counts.max() <= limit:
        return counts.astype(np.int32)
    split = []
    for count in counts.tolist():
        while count > limit:
            split += [limit, 0]
            count -= limit
        split.append(count)
    return np.array(split, np.int32)
