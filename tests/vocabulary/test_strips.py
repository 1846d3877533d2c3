"""Compact masks a column strip at a time: the strips decoded from a CompactMask are its crop, and a
crop built from strips is the CompactMask supervision encodes from the whole crop (same runs)."""

from __future__ import annotations

import numpy as np
import pytest
from supervision.detection.compact_mask import CompactMask

from lang_sam.vocabulary.strips import column_spans, decode_strips, encode_strips


def compact(crop: np.ndarray, left: int = 2, top: int = 3) -> CompactMask:
    image = np.zeros((1, crop.shape[0] + top + 4, crop.shape[1] + left + 5), bool)
    image[0, top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    box = np.array([[left, top, left + crop.shape[1] - 1, top + crop.shape[0] - 1]], np.float32)
    return CompactMask.from_dense(image, box, image.shape[1:])


@pytest.mark.parametrize("fill", [0.0, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("pixels", [1, 7, 50, 10**9])
def test_strips_decode_to_the_crop_and_encode_to_supervisions_runs(fill, pixels):
    rng = np.random.default_rng(int(fill * 10) + pixels)
    for _ in range(20):
        height, width = rng.integers(1, 30, 2)
        crop = rng.random((height, width)) < fill
        masks = compact(crop)
        spans = column_spans(height, width, pixels)
        assert sum(columns for _, columns in spans) == width and all(columns * height <= max(pixels, height) for _, columns in spans)
        decoded = list(decode_strips(masks, 0, pixels))
        assert [first for first, _ in decoded] == [first for first, _ in spans]
        assert np.array_equal(np.concatenate([strip for _, strip in decoded], axis=1), crop)
        built = encode_strips([crop[:, first:first + columns] for first, columns in spans], (2, 3), masks.image_shape)
        assert np.array_equal(built._rles[0], masks._rles[0]), "the runs supervision writes for the whole crop"
        assert np.array_equal(built.crop(0), crop) and built.offsets.tolist() == [[2, 3]]
        assert built.bbox_xyxy.tolist() == masks.bbox_xyxy.tolist() and built.area.tolist() == [crop.sum()]


def test_a_crop_of_one_strip_is_decoded_whole():
    crop = np.eye(5, 8, dtype=bool)
    ((first, strip),) = decode_strips(compact(crop), 0)
    assert first == 0 and np.array_equal(strip, crop)


def test_runs_over_two_to_the_31_pixels_are_split_as_supervision_splits_them():
    from lang_sam.vocabulary.strips import _int32_runs

    limit = 2**31 - 1
    runs = _int32_runs(np.array([limit + 5, 3, 2 * limit + 1], np.int64))
    assert runs.dtype == np.int32 and runs.tolist() == [limit, 0, 5, 3, limit, 0, limit, 0, 1]
    values = np.arange(len(runs)) % 2  # background first: what each run holds
    assert [int(runs[values == value].astype(np.int64).sum()) for value in (0, 1)] == [limit + 5 + 2 * limit + 1, 3]
