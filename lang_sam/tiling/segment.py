"""Tiled inference: a pipeline run on every tile of a large image at the models' full resolution,
the tiles' objects shifted into image pixels (compact masks) and joined across tile borders.

``stream_tiles`` and ``stream_everything_tiles`` give the objects as they are finished, a
Detections chunk after every tile, so that only the objects near the tiles running are held (what
the CLI's writers consume: memory bounded by the image's width, not its area);
``segment_tiles`` and ``segment_everything_tiles`` gather those chunks into one Detections."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from lang_sam.errors import InvalidPromptError
from lang_sam.tiling.merge import MERGE_IOU, TileMerger, gather, to_image
from lang_sam.tiling.readers import TileReader
from lang_sam.tiling.windows import OVERLAP, TILE, Window, tile_windows
from lang_sam.vocabulary.detections import Detections

Progress = Callable[[int, int], None]  # (tiles done, tiles in all), called after every tile


def segment_tiles(pipeline, reader: TileReader, *args: Any, **kwargs: Any) -> Detections:
    """stream_tiles' objects as one image's Detections (held in memory: for images whose objects fit)."""
    return gather(stream_tiles(pipeline, reader, *args, **kwargs), (reader.height, reader.width))


def segment_everything_tiles(generator, reader: TileReader, *args: Any, **kwargs: Any) -> Detections:
    """stream_everything_tiles' masks as one image's Detections (held in memory: for images whose masks fit)."""
    return gather(stream_everything_tiles(generator, reader, *args, **kwargs), (reader.height, reader.width))


def stream_tiles(pipeline, reader: TileReader, text: str | None = None, tile: int = TILE, overlap: int = OVERLAP, *,
                 boxes=None, region=None, label: str = "object", merge_iou: float = MERGE_IOU,
                 progress: Progress | None = None, **options: Any) -> Iterator[Detections]:
    """What text names (and the boxes you give) in a large image, tile by tile: after every tile, the
    objects it finished (a Detections chunk, often empty) in image pixels.

    pipeline: a LangSAM; reader: a TileReader (ArrayReader, RasterReader); text: the prompt, as
    LangSAM.predict takes it, or None with boxes only; boxes: (M, 4) pixel-edge xyxy in image
    pixels, each an object named label, each wholly inside one tile (it is segmented in the tile
    whose centre is nearest its own); region: (x0, y0, x1, y1) image pixels: only tiles of this
    region run (text restricted to it). options: LangSAM.predict's (box_threshold, text_threshold,
    max_detections (per tile), nms_iou_threshold, multimask_output). Chunks hold compact masks,
    ids in data["object_id"] (1, 2, ... across the chunks; see lang_sam.tiling.merge for how cut
    objects are joined and when an object is finished) and the classes seen so far (each chunk's
    are the first of the next's); nodata pixels are in no mask. progress(done, total) after each
    tile. Options are checked at the call, before any tile runs."""
    windows = tile_windows(reader.height, reader.width, tile, overlap, _region(region))
    tile_boxes = assign_boxes(boxes, windows)
    if text is None and boxes is None:
        raise InvalidPromptError("segment_tiles needs a text prompt or boxes.")

    def run(pixels: np.ndarray, index: int) -> Detections | None:
        if text is None and tile_boxes[index] is None:
            return None
        return pipeline.predict(pixels, text, boxes=tile_boxes[index], label=label, **options).detections

    return _run_tiles(reader, TileMerger(windows, (reader.height, reader.width), merge_iou), run, progress)


def stream_everything_tiles(generator, reader: TileReader, tile: int = TILE, overlap: int = OVERLAP, *, region=None,
                            merge_iou: float = MERGE_IOU, progress: Progress | None = None) -> Iterator[Detections]:
    """Segment-everything over a large image: the automatic mask generator (a
    lang_sam.segmenter.SamAutomaticMaskGenerator on any promptable segmenter) on every tile, the
    masks joined and given as stream_tiles gives them (every mask is the generator's one class, "object")."""
    from lang_sam.everything import segment_everything

    windows = tile_windows(reader.height, reader.width, tile, overlap, _region(region))
    merger = TileMerger(windows, (reader.height, reader.width), merge_iou)
    return _run_tiles(reader, merger, lambda pixels, index: segment_everything(pixels, generator), progress)


def assign_boxes(boxes, windows: Sequence[Window]) -> list[np.ndarray | None]:
    """Per window, the (k, 4) given boxes it segments, in its own pixels (None when it has none):
    each box goes to the window holding it whose centre is nearest the box's."""
    assigned: list[list[np.ndarray]] = [[] for _ in windows]
    if boxes is None:
        return [None] * len(windows)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4), np.float32)
    for box in boxes:
        holding = [index for index, window in enumerate(windows) if window.contains(box)]
        if not holding:
            raise InvalidPromptError(
                f"The box {box.tolist()} does not fit inside one tile of the tiled area; give a larger tile (it must "
                "hold every box) or a region that holds the box.")
        centre = (box[:2] + box[2:]) / 2
        best = min(holding, key=lambda index: float(np.abs(np.array(_centre(windows[index])) - centre).sum()))
        assigned[best].append(box - np.array(windows[best].xyxy[:2] * 2, np.float32))
    return [np.stack(tile) if tile else None for tile in assigned]


def _centre(window: Window) -> tuple[float, float]:
    return window.left + window.width / 2, window.top + window.height / 2


def _region(region) -> Window | None:
    if region is None or isinstance(region, Window):
        return region
    x0, y0, x1, y1 = (round(float(value)) for value in region)
    if x1 <= x0 or y1 <= y0:
        raise InvalidPromptError(f"The region must be (x0, y0, x1, y1) pixels with x0 < x1 and y0 < y1, got {tuple(region)}.")
    return Window(x0, y0, x1 - x0, y1 - y0)


def _run_tiles(reader: TileReader, merger: TileMerger, run: Callable[[np.ndarray, int], Detections | None],
               progress: Progress | None) -> Iterator[Detections]:
    """run(pixels, window index) on every window of merger with data, its objects cut to the data
    pixels and moved into image pixels, given to merger; after each tile, what merger finished.
    Only one tile's dense masks exist at a time."""
    image_size = (reader.height, reader.width)
    classes: list[str] = []
    for index, window in enumerate(merger.windows):
        pixels, valid = reader.read(window)
        found = run(pixels, index) if valid.any() else None
        if found is not None:
            found = _on_data(found, valid)
            classes.extend(name for name in found.classes if name not in classes)
            found = to_image(found, window, image_size, classes)
        finished = merger.add(found)
        if progress is not None:
            progress(index + 1, len(merger.windows))
        yield finished


def _on_data(found: Detections, valid: np.ndarray) -> Detections:
    """The objects with their masks cut to the pixels that hold data; those left empty are dropped."""
    if valid.all():
        return found
    masks = found.dense_masks() & valid
    return found.with_masks(masks)[masks.any(axis=(1, 2))]
