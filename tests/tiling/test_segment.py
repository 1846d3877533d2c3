"""Tiled inference through a real LangSAM (tiny random models, float32): a one-tile image gives the
untiled result exactly; boxes and regions land in the right tile; nodata is never segmented."""

from __future__ import annotations

import numpy as np
import pytest

from lang_sam.errors import InvalidPromptError
from lang_sam.everything import segment_everything
from lang_sam.pipeline import LangSAM
from lang_sam.segmenter import SamAutomaticMaskGenerator
from lang_sam.tiling import OBJECT_ID_KEY, ArrayReader, segment_everything_tiles, segment_tiles
from tests.conftest import synthetic_image

LOOSE = {"box_threshold": 0.0, "text_threshold": 0.0}


@pytest.fixture(scope="module")
def model(sam_files, tiny_detector_dir):
    return LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype="float32")


def assert_same_objects(tiled, untiled) -> None:
    """The same objects in the same order: boxes, masks, scores and classes."""
    assert len(tiled) == len(untiled) > 0 and tiled.is_compact
    assert np.array_equal(tiled.xyxy, untiled.xyxy)
    assert np.array_equal(tiled.dense_masks(), untiled.dense_masks())
    assert np.array_equal(tiled.box_scores, untiled.box_scores) and np.array_equal(tiled.mask_scores, untiled.mask_scores)
    assert tiled.labels == untiled.labels
    assert tiled.data[OBJECT_ID_KEY].tolist() == list(range(1, len(untiled) + 1))


def test_an_image_that_fits_one_tile_gives_the_untiled_result(model):
    image = synthetic_image(300, 420, seed=4)
    untiled = model.predict(image, "car, tree", max_detections=5, **LOOSE).detections
    calls = []
    tiled = segment_tiles(model, ArrayReader(image), "car, tree", tile=512, overlap=64, max_detections=5,
                          progress=lambda done, total: calls.append((done, total)), **LOOSE)
    assert_same_objects(tiled, untiled)
    assert tiled.classes == untiled.classes == ("car", "tree") and calls == [(1, 1)]


def test_segment_everything_of_an_image_that_fits_one_tile_is_the_untiled_result(model):
    image = synthetic_image(200, 240, seed=5)
    generator = SamAutomaticMaskGenerator(model.sam, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    untiled = segment_everything(image, generator)
    tiled = segment_everything_tiles(generator, ArrayReader(image), tile=256, overlap=32)
    assert_same_objects(tiled, untiled)


def test_boxes_in_image_pixels_are_segmented_in_the_tile_that_holds_them(model):
    image = synthetic_image(256, 600, seed=6)  # tiles at x 0, 224 and 344 (tile 256, overlap 32)
    boxes = np.array([[20, 30, 120, 200], [400, 50, 580, 150]], np.float32)
    found = segment_tiles(model, ArrayReader(image), None, tile=256, overlap=32, boxes=boxes, label="roof")
    assert found.labels == ["roof", "roof"] and found.box_scores.tolist() == [1.0, 1.0]
    for box, mask, (left, tile) in zip(boxes, found.dense_masks(), [(0, image[:, :256]), (344, image[:, 344:600])]):
        shifted = box - np.array([left, 0, left, 0], np.float32)
        direct = model.predict(np.ascontiguousarray(tile), boxes=shifted[None], label="roof")
        assert np.array_equal(mask[:, left:left + 256], direct.masks[0]) and not mask[:, :left].any()


def test_a_box_no_tile_holds_is_refused(model):
    with pytest.raises(InvalidPromptError, match="larger tile"):
        segment_tiles(model, ArrayReader(synthetic_image(300, 300)), None, tile=128, overlap=16, boxes=[[0, 0, 200, 50]])


def test_a_region_restricts_the_tiles_and_nodata_is_never_segmented(model):
    image = synthetic_image(256, 768, seed=7)
    valid = np.ones(image.shape[:2], bool)
    valid[:, 256:] = False  # the right two thirds hold no data
    valid[:, 100:140] = False
    ran = []
    original = model.predict

    def counted(pixels, *args, **kwargs):
        ran.append(pixels.shape)
        return original(pixels, *args, **kwargs)

    model.predict = counted
    try:
        found = segment_tiles(model, ArrayReader(image, valid), "car", tile=256, overlap=0, max_detections=8, **LOOSE)
        in_region = segment_tiles(model, ArrayReader(image), "car", tile=256, overlap=0, region=(0, 0, 256, 256),
                                  max_detections=8, **LOOSE)
    finally:
        del model.predict
    assert ran == [(256, 256, 3), (256, 256, 3)], "the tiles with no data never ran, nor those outside the region"
    assert len(found) and not (found.dense_masks() & ~valid).any()
    assert len(in_region) and not in_region.dense_masks()[:, :, 256:].any()


def test_a_1x1_image_runs_as_one_tile(model):
    image = np.full((1, 1, 3), 100, np.uint8)
    found = segment_tiles(model, ArrayReader(image), None, boxes=[[0, 0, 1, 1]])
    direct = model.predict(image, boxes=[[0, 0, 1, 1]])
    assert found.image_size == (1, 1) and np.array_equal(found.dense_masks(), direct.masks)
