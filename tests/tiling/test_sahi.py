"""lang-sam's tiling against SAHI's, the central claims of bench/bench_tiling_sahi.py in small: SAHI's
slicing draws exactly our grid, and on the same per-tile objects SAHI's default merge (GREEDYNMM,
box IOS >= 0.5) leaves an object larger than the overlap in pieces where ours gives it whole.

sahi is in no extra (with its dependencies pip adds opencv-python beside supervision's
opencv-python-headless); `pip install --no-deps sahi==0.12.8` brings what these tests need."""

from __future__ import annotations

import numpy as np
import pytest

from lang_sam.tiling import merge_tiles, tile_windows
from lang_sam.tiling.merge import TileDetections
from tests.tiling.test_merge import SIZE, disc, seen_through_tiles

pytest.importorskip("sahi", reason="sahi is not installed (pip install --no-deps sahi==0.12.8)")


def sahi_predictions(tiles: list[TileDetections]) -> list:
    """The tiles' objects (image pixels, compact masks) as SAHI's ObjectPredictions, shifted into the
    image as get_sliced_prediction shifts them (SAHI's masks are COCO polygons)."""
    from sahi.prediction import ObjectPrediction
    from sahi.utils.cv import get_coco_segmentation_from_bool_mask

    objects = []
    for tile in tiles:
        found = tile.detections
        for index in range(len(found)):
            left, top = (int(value) for value in found.masks.offsets[index])
            objects.append(ObjectPrediction(
                bbox=found.xyxy[index].tolist(), category_id=int(found.class_ids[index]), category_name=found.labels[index],
                segmentation=get_coco_segmentation_from_bool_mask(found.masks.crop(index)),
                score=float(found.box_scores[index]), shift_amount=[left, top],
                full_shape=list(found.image_size)).get_shifted_object_prediction())
    return objects


@pytest.mark.parametrize(("height", "width", "tile", "overlap"), [(280, 280, 160, 40), (1920, 2816, 1024, 128),
                                                                  (5000, 3001, 1024, 128), (700, 90, 512, 64)])
def test_sahis_slicing_draws_our_grid(height, width, tile, overlap):
    from sahi.slicing import get_slice_bboxes

    ours = [list(window.xyxy) for window in tile_windows(height, width, tile, overlap)]
    assert ours == get_slice_bboxes(height, width, tile, tile, False, overlap / tile, overlap / tile)


def test_an_object_larger_than_the_overlap_is_whole_with_ours_and_in_pieces_with_sahis_default():
    from sahi.postprocess.combine import GreedyNMMPostprocess

    truth = disc(140, 140, 100)  # across the corner of the four tiles, 200 pixels wide against an overlap of 40
    tiles = seen_through_tiles([(truth, 0, 0.8)])
    assert sum(len(tile.detections) for tile in tiles) == 4

    ours = merge_tiles(tiles, SIZE)
    assert len(ours) == 1 and np.array_equal(ours.dense_masks()[0], truth)

    theirs = GreedyNMMPostprocess(match_threshold=0.5, match_metric="IOS", class_agnostic=False)(sahi_predictions(tiles))
    ious = [np.logical_and(found.mask.bool_mask, truth).sum() / np.logical_or(found.mask.bool_mask, truth).sum() for found in theirs]
    assert len(theirs) == 4, "the quarters' boxes overlap by the 40-pixel band only: IOS 0.33 across a border, 0.11 across the corner"
    assert max(ious) < 0.5


def test_sahis_polygons_carry_our_masks():
    """The conversion the comparison rests on: each tile's object, through SAHI's polygon, is the same pixels."""
    tiles = seen_through_tiles([(disc(140, 60, 45), 0, 0.8), (disc(60, 200, 30), 1, 0.6)])
    masks = [mask for tile in tiles for mask in tile.detections.dense_masks()]
    predictions = sahi_predictions(tiles)
    assert len(predictions) == len(masks) == 3
    for prediction, mask in zip(predictions, masks):
        assert np.array_equal(prediction.mask.bool_mask, mask)
