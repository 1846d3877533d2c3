"""COCO RLE of a mask encoded from its crop alone (tiled runs never make an image-sized mask) is
pycocotools' encoding of the whole mask, whichever image edges and columns the crop touches."""

from __future__ import annotations

import numpy as np
import pytest

from lang_sam.results import encode_crop_rle, encode_rles


@pytest.mark.parametrize("seed", range(5))
def test_an_rle_from_a_crop_is_pycocotools_rle_of_the_whole_mask(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        height, width = (int(side) for side in rng.integers(1, 25, 2))
        top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
        crop = rng.random((int(rng.integers(1, height - top + 1)), int(rng.integers(1, width - left + 1)))) < rng.choice([0.0, 0.4, 1.0])
        mask = np.zeros((height, width), bool)
        mask[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
        assert encode_crop_rle(crop, left, top, (height, width)) == encode_rles(mask[None])[0]
