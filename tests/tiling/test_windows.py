"""The tile grid: every pixel covered, neighbours sharing the overlap, the last tiles at the edge."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lang_sam.errors import InvalidOptionError
from lang_sam.tiling import Window, tile_windows


@pytest.mark.parametrize(("height", "width", "tile", "overlap"), [(1000, 1000, 1024, 128), (3000, 2100, 1024, 128),
                                                                 (1, 1, 1024, 128), (300, 700, 64, 0), (257, 250, 100, 30)])
def test_tiles_cover_every_pixel_with_the_overlap(height, width, tile, overlap):
    windows = tile_windows(height, width, tile, overlap)
    seen = np.zeros((height, width), int)
    for window in windows:
        assert window.width == min(tile, width) and window.height == min(tile, height)
        seen[window.top:window.top + window.height, window.left:window.left + window.width] += 1
    assert seen.min() >= 1
    lefts, tops = sorted({w.left for w in windows}), sorted({w.top for w in windows})
    assert len(windows) == len(lefts) * len(tops)
    for starts, side in ((lefts, width), (tops, height)):
        assert starts[0] == 0 and starts[-1] + min(tile, side) == side
        assert all(tile - (b - a) >= overlap for a, b in itertools.pairwise(starts)), "neighbours share at least the overlap"


def test_tiles_of_a_region_stay_inside_it():
    windows = tile_windows(1000, 1000, 200, 50, Window(100, 300, 350, 150))
    assert {w.xyxy for w in windows} == {(100, 300, 300, 450), (250, 300, 450, 450)}


@pytest.mark.parametrize(("tile", "overlap"), [(64, 100), (100, 51), (16, 0), (1024.0, 128), (1024, -1)])
def test_bad_tiling_is_refused_with_what_to_give(tile, overlap):
    with pytest.raises(InvalidOptionError, match="tile"):
        tile_windows(500, 500, tile, overlap)


def test_a_region_outside_the_image_is_refused():
    with pytest.raises(InvalidOptionError, match="outside"):
        tile_windows(100, 100, 64, 8, Window(200, 0, 10, 10))
