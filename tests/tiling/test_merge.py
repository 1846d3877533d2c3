"""Objects cut by tile borders come out whole: per-tile Detections built from a known mask (what a
perfect segmenter sees through each window) merge into one object with the full mask."""

from __future__ import annotations

import numpy as np
import pytest

from lang_sam.errors import InvalidOptionError
from lang_sam.tiling import OBJECT_ID_KEY, merge_tiles, tile_windows
from lang_sam.tiling.merge import TileDetections, to_image
from lang_sam.vocabulary import Detections

SIZE = (280, 280)
TILE, OVERLAP = 160, 40  # tiles start at 0 and 120: one border band 120..160 each way


def disc(centre_x: float, centre_y: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE[0], :SIZE[1]]
    return (xx - centre_x) ** 2 + (yy - centre_y) ** 2 <= radius ** 2


def seen_through_tiles(objects: list[tuple[np.ndarray, int, float]], classes=("car", "tree")) -> list[TileDetections]:
    """Each tile's Detections of the objects (mask, class id, score) as a tile would give them: the
    part of each mask inside the window, in tile pixels, box of that part."""
    tiles = []
    for window in tile_windows(*SIZE, TILE, OVERLAP):
        rows, columns = slice(window.top, window.top + window.height), slice(window.left, window.left + window.width)
        parts = [(mask[rows, columns], class_id, score) for mask, class_id, score in objects if mask[rows, columns].any()]
        masks = np.array([part for part, _, _ in parts]).reshape(-1, window.height, window.width)
        boxes = [[np.flatnonzero(m.any(0))[0], np.flatnonzero(m.any(1))[0], np.flatnonzero(m.any(0))[-1] + 1,
                  np.flatnonzero(m.any(1))[-1] + 1] for m in masks]
        found = Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4), image_size=(window.height, window.width),
                           masks=masks, box_scores=[score for _, _, score in parts], mask_scores=[0.9] * len(parts),
                           class_ids=[class_id for _, class_id, _ in parts], classes=classes)
        tiles.append(TileDetections(window, to_image(found, window, SIZE, list(classes))))
    return tiles


@pytest.mark.parametrize(("name", "centre", "tiles_touched"), [("across a border", (140, 60), 2),
                                                               ("across the corner of four tiles", (140, 140), 4)])
def test_an_object_cut_by_tile_borders_is_one_object_with_its_full_mask(name, centre, tiles_touched):
    truth = disc(*centre, 45)
    tiles = seen_through_tiles([(truth, 0, 0.8)])
    assert sum(len(tile.detections) for tile in tiles) == tiles_touched, name
    merged = merge_tiles(tiles, SIZE)
    assert len(merged) == 1 and merged.is_compact
    assert np.array_equal(merged.dense_masks()[0], truth)
    rows, columns = np.flatnonzero(truth.any(1)), np.flatnonzero(truth.any(0))
    assert merged.xyxy[0].tolist() == [columns[0], rows[0], columns[-1] + 1, rows[-1] + 1]
    assert merged.labels == ["car"] and merged.data[OBJECT_ID_KEY].tolist() == [1]


def test_neighbours_of_other_classes_or_apart_stay_apart():
    car, tree, other_car = disc(140, 60, 30), disc(140, 200, 30), disc(60, 140, 25)
    tree_on_car = car & (np.mgrid[:280, :280][1] >= 140)  # the same pixels as part of the car, but a tree
    merged = merge_tiles(seen_through_tiles([(car, 0, 0.9), (tree, 1, 0.7), (other_car, 0, 0.6), (tree_on_car, 1, 0.5)]), SIZE)
    masks = merged.dense_masks()
    assert sorted(merged.labels) == ["car", "car", "tree", "tree"]
    for truth in (car, tree, other_car, tree_on_car):
        assert sum(np.array_equal(mask, truth) for mask in masks) == 1
    assert merged.data[OBJECT_ID_KEY].tolist() == [1, 2, 3, 4]


def test_two_objects_of_one_tile_are_never_fused_through_a_neighbour_that_saw_them_as_one():
    left_tile, right_tile = tile_windows(*SIZE, TILE, OVERLAP)[:2]
    halves = disc(140, 60, 30) & (np.mgrid[:280, :280][1] < 145), disc(140, 60, 30) & (np.mgrid[:280, :280][1] >= 145)
    whole = halves[0] | halves[1]

    def tile_of(window, masks):
        crops = np.array([mask[window.top:window.top + window.height, window.left:window.left + window.width] for mask in masks])
        found = Detections(xyxy=np.tile([0, 0, window.width, window.height], (len(masks), 1)), image_size=crops.shape[1:],
                           masks=crops, box_scores=[0.9] * len(masks), mask_scores=[0.9] * len(masks),
                           class_ids=[0] * len(masks), classes=("car",))
        return TileDetections(window, to_image(found, window, SIZE, ["car"]))

    merged = merge_tiles([tile_of(left_tile, halves), tile_of(right_tile, [whole])], SIZE, merge_iou=0.3)
    assert len(merged) == 2, "the right tile's one object joins the left half it matches best, not both halves"
    seen_left = halves[1] & (np.mgrid[:280, :280][1] < left_tile.width)
    assert np.array_equal(merged.dense_masks()[0], whole) and np.array_equal(merged.dense_masks()[1], seen_left)


def test_scores_of_a_joined_object_the_best_box_and_the_largest_parts_mask_score():
    tiles = seen_through_tiles([(disc(100, 60, 40), 0, 0.8)])
    first = next(tile for tile in tiles if len(tile.detections))
    first_detections = first.detections
    tiles[tiles.index(first)] = TileDetections(first.window, Detections(
        xyxy=first_detections.xyxy, image_size=SIZE, masks=first_detections.masks, box_scores=[0.95], mask_scores=[0.5],
        class_ids=first_detections.class_ids, classes=first_detections.classes))
    merged = merge_tiles(tiles, SIZE)
    assert len(merged) == 1 and merged.box_scores.tolist() == pytest.approx([0.95])
    assert merged.mask_scores.tolist() == pytest.approx([0.5]), "the left tile saw most of the disc"


@pytest.mark.parametrize("merge_iou", [0, 1.5, "0.5", True])
def test_a_merge_iou_outside_0_to_1_is_refused(merge_iou):
    with pytest.raises(InvalidOptionError, match="merge_iou"):
        merge_tiles([], SIZE, merge_iou)


def test_no_tiles_give_no_objects():
    merged = merge_tiles([], SIZE)
    assert len(merged) == 0 and merged.image_size == SIZE and merged.is_compact
