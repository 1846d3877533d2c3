"""Detections: validated on construction, len() the count, indexing filters, compact masks hold the same
pixels, and supervision's Detections round-trip losslessly."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv
import torch

from lang_sam.errors import InvalidOptionError
from lang_sam.vocabulary import Detections, compact_masks

SIZE = (40, 60)


def random_detections(count: int = 5, seed: int = 0, tracked: bool = True) -> Detections:
    """count objects, each a random blob mask and a box around it, with every field set."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, *SIZE), bool)
    xyxy = np.zeros((count, 4), np.float32)
    for index in range(count):
        x0, y0 = rng.integers(0, 40), rng.integers(0, 25)
        width, height = rng.integers(1, 20), rng.integers(1, 15)
        masks[index, y0:y0 + height, x0:x0 + width] = rng.random((height, width)) > 0.3
        xyxy[index] = x0, y0, x0 + width, y0 + height
    return Detections(
        xyxy=xyxy, image_size=SIZE, masks=masks, box_scores=rng.random(count), mask_scores=rng.random(count),
        class_ids=rng.integers(0, 3, count), classes=("car", "wheel", "dog"),
        tracker_ids=np.arange(10, 10 + count) if tracked else None,
        data={"stability_score": rng.random(count).astype(np.float32), "note": [f"n{i}" for i in range(count)]},
    )


def assert_same(first: Detections, second: Detections) -> None:
    assert len(first) == len(second)
    np.testing.assert_array_equal(first.xyxy, second.xyxy)
    np.testing.assert_array_equal(first.dense_masks(), second.dense_masks())
    for name in ("box_scores", "mask_scores", "class_ids", "tracker_ids"):
        left, right = getattr(first, name), getattr(second, name)
        assert (left is None) == (right is None), name
        if left is not None:
            np.testing.assert_array_equal(left, right)
            assert left.dtype == right.dtype, name
    assert first.classes == second.classes and first.image_size == second.image_size
    assert first.labels == second.labels
    assert set(first.data) == set(second.data)
    for key in first.data:
        assert list(first.data[key]) == list(second.data[key]), key


def test_len_is_the_number_of_objects_and_labels_name_their_class():
    detections = random_detections(5)
    assert len(detections) == 5
    assert detections.labels == [detections.classes[i] for i in detections.class_ids]
    assert detections.xyxy.dtype == np.float32 and detections.class_ids.dtype == np.int64


@pytest.mark.parametrize("index", [2, -1, slice(1, 4), [4, 0, 2], np.array([True, False, True, True, False])])
def test_indexing_keeps_the_picked_objects_in_order(index):
    detections = random_detections(5)
    picked = detections[index]
    positions = np.arange(5)[index].reshape(-1)  # what numpy picks, as positions
    assert len(picked) == len(positions)
    np.testing.assert_array_equal(picked.xyxy, detections.xyxy[positions])
    np.testing.assert_array_equal(picked.dense_masks(), detections.dense_masks()[positions])
    np.testing.assert_array_equal(picked.tracker_ids, detections.tracker_ids[positions])
    assert picked.labels == [detections.labels[i] for i in positions]
    assert picked.data["note"] == [f"n{i}" for i in positions]
    np.testing.assert_array_equal(picked.data["stability_score"], detections.data["stability_score"][positions])


def test_a_boolean_filter_on_a_score_filters_like_numpy():
    detections = random_detections(8, seed=3)
    kept = detections[detections.box_scores > 0.5]
    assert sorted(kept.box_scores.tolist()) == sorted(s for s in detections.box_scores.tolist() if s > 0.5)


def test_indexing_out_of_range_or_with_a_wrong_length_mask_is_an_index_error():
    detections = random_detections(3)
    with pytest.raises(IndexError):
        detections[3]
    with pytest.raises(IndexError):
        detections[np.array([True, False])]
    with pytest.raises(TypeError, match="not a bool"):
        detections[True]


def test_an_empty_index_keeps_no_objects():
    for detections in (random_detections(3), random_detections(3).compact()):
        assert len(detections[[]]) == 0 and detections[[]].dense_masks().shape == (0, *SIZE)


@pytest.mark.parametrize("tracked", [True, False])
def test_supervision_round_trip_is_lossless(tracked):
    detections = random_detections(6, seed=1, tracked=tracked)
    converted = detections.to_supervision()
    assert isinstance(converted, sv.Detections) and len(converted) == 6
    np.testing.assert_array_equal(converted.confidence, detections.box_scores)
    assert list(converted.data["class_name"]) == detections.labels
    assert_same(Detections.from_supervision(converted), detections)


def test_a_supervision_result_made_elsewhere_gets_its_classes_from_the_names():
    made = sv.Detections(xyxy=np.array([[0, 0, 5, 5], [1, 1, 4, 4]], np.float32), class_id=np.array([2, 0]),
                         confidence=np.array([0.9, 0.4], np.float32), data={"class_name": np.array(["dog", "car"])})
    detections = Detections.from_supervision(made, image_size=SIZE)
    assert detections.labels == ["dog", "car"] and detections.classes == ("car", "", "dog")
    with pytest.raises(InvalidOptionError, match="image_size"):
        Detections.from_supervision(sv.Detections(xyxy=np.zeros((1, 4), np.float32)))
    unnamed = Detections.from_supervision(sv.Detections(xyxy=np.zeros((2, 4), np.float32), class_id=np.array([1, 0])), image_size=SIZE)
    assert unnamed.classes == ("", "") and unnamed.class_ids.tolist() == [1, 0]


def test_compact_masks_hold_the_same_pixels_even_outside_the_box():
    detections = random_detections(5, seed=2)
    dense = detections.dense_masks().copy()
    dense[0, 0, 0] = dense[0, -1, -1] = True  # pixels far outside object 0's box
    dense[1] = False  # an empty mask
    compact = detections.with_masks(dense).compact()
    assert compact.is_compact and not detections.is_compact
    np.testing.assert_array_equal(compact.dense_masks(), dense)
    np.testing.assert_array_equal(compact[[0, 2]].dense_masks(), dense[[0, 2]])
    np.testing.assert_array_equal(compact_masks(dense).area, dense.sum(axis=(1, 2)))
    assert_same(Detections.from_supervision(compact.to_supervision()), compact)
    assert Detections.from_supervision(compact.to_supervision()).is_compact


def test_compact_masks_of_a_large_image_stay_small():
    size = (4000, 6000)
    masks = np.zeros((3, *size), bool)
    for index in range(3):
        masks[index, 100 * index:100 * index + 50, 200:260] = True
    compact = compact_masks(masks)
    held = sum(rle.nbytes for rle in compact._rles)  # the run lengths supervision keeps
    assert held < masks[0].nbytes / 1000
    np.testing.assert_array_equal(compact.to_dense(), masks)


@pytest.mark.parametrize("change, message", [
    ({"xyxy": np.array([[5, 5, 1, 1]])}, "x0 <= x1"),
    ({"xyxy": np.array([[0, 0, np.nan, 1]])}, "finite"),
    ({"box_scores": np.array([np.nan])}, "NaN"),
    ({"class_ids": np.array([3])}, "index classes"),
    ({"class_ids": np.array([0.5])}, "whole numbers"),
    ({"mask_scores": np.array([0.1, 0.2])}, "one value per object"),
    ({"masks": np.zeros((1, 4, 4), bool)}, "must be"),
    ({"masks": np.full((1, *SIZE), 2)}, "bool"),
    ({"data": {"x": [1, 2]}}, "one value per object"),
    ({"data": {"class_name": ["car"]}}, "field of Detections"),
    ({"image_size": (4,)}, "height, width"),
    ({"image_size": (40.5, 60)}, "whole numbers"),
    ({"xyxy": np.zeros(8)}, "\\(N, 4\\)"),
    ({"masks": torch.zeros(1, *SIZE, dtype=torch.bool)}, "CompactMask"),
    ({"data": {"x": 3}}, "one value per object"),
])
def test_construction_refuses_inconsistent_fields(change, message):
    fields = dict(xyxy=np.array([[0, 0, 2, 2]]), image_size=SIZE, masks=np.zeros((1, *SIZE), bool),
                  box_scores=np.array([0.5]), mask_scores=np.array([0.9]), class_ids=np.array([0]), classes=("car",))
    with pytest.raises(InvalidOptionError, match=message):
        Detections(**{**fields, **change})
