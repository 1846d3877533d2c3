"""One mask-to-box convention (pixel-edge xyxy), checked against boxes computed pixel by pixel."""

from __future__ import annotations

import numpy as np
import torch

from lang_sam.geometry import mask_to_box, masks_to_boxes


def box_by_pixels(mask: np.ndarray) -> list[int]:
    """The box walked out of the pixels: the leftmost and topmost mask pixel, one past the rightmost and lowest."""
    xs = [x for y in range(mask.shape[0]) for x in range(mask.shape[1]) if mask[y, x]]
    ys = [y for y in range(mask.shape[0]) for x in range(mask.shape[1]) if mask[y, x]]
    return [min(xs), min(ys), max(xs) + 1, max(ys) + 1] if xs else [0, 0, 0, 0]


def test_boxes_hold_every_mask_pixel_with_the_end_one_past_the_last():
    rng = np.random.default_rng(0)
    masks = rng.random((40, 13, 17)) > 0.97
    masks[0] = False  # empty
    masks[1] = False
    masks[1, 12, 16] = True  # the last pixel only: the box reaches the image's edge
    masks[2] = True  # everything
    expected = np.array([box_by_pixels(mask) for mask in masks], dtype=np.float32)
    assert expected[1].tolist() == [16, 12, 17, 13] and expected[2].tolist() == [0, 0, 17, 13]
    boxes = masks_to_boxes(masks)
    assert boxes.dtype == np.float32 and np.array_equal(boxes, expected)
    tensor_boxes = masks_to_boxes(torch.from_numpy(masks))
    assert tensor_boxes.dtype == torch.int64 and np.array_equal(tensor_boxes.numpy(), expected)
    assert all(np.array_equal(mask_to_box(mask), box) for mask, box in zip(masks, expected))
    assert masks_to_boxes(np.zeros((0, 5, 5), bool)).shape == (0, 4)
    flipped = masks[:, ::-1]  # a view with a negative stride, as numpy's flips give
    assert np.array_equal(masks_to_boxes(flipped), [box_by_pixels(mask) for mask in flipped])
    assert np.array_equal(masks_to_boxes(masks.astype(np.uint8)), expected), "0/1 masks read as bool"
