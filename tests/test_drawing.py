"""Drawings: masks, boxes and "label score" captions, input untouched, empty result unchanged."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lang_sam.drawing import draw_image
from lang_sam.results import LangSAMResult


def make_result(count: int, size=(100, 150)) -> LangSAMResult:
    masks = np.zeros((count, *size), dtype=bool)
    boxes = []
    for index in range(count):
        top, left = 10 + 40 * index, 10 + 60 * index
        masks[index, top : top + 30, left : left + 40] = True
        boxes.append([left, top, left + 40, top + 30])
    return LangSAMResult(
        masks=masks,
        boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        phrases=["car", "wheel"][:count],
        logits=np.array([0.87, 0.5][:count], dtype=np.float32),
        mask_scores=np.array([0.9, 0.8][:count], dtype=np.float32),
        class_ids=np.arange(count),
        classes=["car", "wheel"],
        image_size=size,
    )


def test_draws_masks_with_one_colour_per_class_and_keeps_the_input():
    image = np.full((100, 150, 3), 255, dtype=np.uint8)
    before = image.copy()
    drawing = draw_image(image, make_result(2))
    np.testing.assert_array_equal(image, before)
    assert drawing.shape == image.shape and drawing.dtype == np.uint8
    inside_car, inside_wheel = drawing[30, 35], drawing[70, 95]
    assert not np.array_equal(inside_car, [255, 255, 255]) and not np.array_equal(inside_wheel, [255, 255, 255])
    assert not np.array_equal(inside_car, inside_wheel)
    np.testing.assert_array_equal(drawing[95, 5], [255, 255, 255])


def test_labels_are_written():
    """Two captions that differ from their third letter on ("car 0.87", "cat 0.87") change pixels
    only past the shared "ca" and inside the caption's box: the text's size (cv2.getTextSize) with
    4 px of padding a side, at the detection's left edge and the image's top."""
    import cv2

    def text_size(text: str) -> tuple[int, int]:
        (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        return width, height + baseline

    image = np.zeros((100, 150, 3), np.uint8)
    car = draw_image(image, make_result(1))
    cat = draw_image(image, replace(make_result(1), phrases=["cat"]))
    rows, columns = np.nonzero((car != cat).any(axis=2))
    left, padding = int(make_result(1).boxes[0, 0]), 4
    widest = max(text_size("car 0.87")[0], text_size("cat 0.87")[0])
    assert len(rows) > 0, "the caption's words are drawn"
    assert columns.min() >= left + padding + text_size("ca")[0] - 1, "the shared letters are drawn alike"
    assert columns.max() <= left + widest + 2 * padding and rows.max() <= text_size("car 0.87")[1] + 2 * padding


def test_empty_result_returns_the_image_unchanged():
    image = np.random.default_rng(0).integers(0, 255, (100, 150, 3), dtype=np.uint8)
    np.testing.assert_array_equal(draw_image(image, make_result(0)), image)


def test_result_for_another_image_size_is_an_error():
    with pytest.raises(ValueError, match="size"):
        draw_image(np.zeros((50, 50, 3), np.uint8), make_result(1))
