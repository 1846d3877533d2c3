"""The grid of overlapping tiles over an image (or over a region of it).

SAHI's ``sahi.slicing.get_slice_bboxes`` draws the same grid (tiles step by tile - overlap, the last
row and column moved back to end at the image's edge; tests/tiling/test_sahi.py), but it is not
used: it takes the overlap as a ratio that it truncates back to pixels (one pixel short for some
sizes), and sahi's requirements bring opencv-python beside supervision's opencv-python-headless
(two packages owning ``cv2``). These 20 lines cost less than that dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

from lang_sam.errors import InvalidOptionError

TILE = 1024  # SAM's input side: a tile is seen at the models' full resolution
OVERLAP = 128  # samgeo's and SAHI's common default; an object cut by a border is whole in one tile if it is under this


@dataclass(frozen=True)
class Window:
    """A rectangle of image pixels: columns left .. left + width, rows top .. top + height."""

    left: int
    top: int
    width: int
    height: int

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        """Pixel-edge box (x0, y0, x1, y1), as Detections' boxes are."""
        return self.left, self.top, self.left + self.width, self.top + self.height

    def intersection(self, other: Window) -> Window | None:
        """The pixels both windows hold, or None when they share none."""
        x0, y0 = max(self.left, other.left), max(self.top, other.top)
        x1 = min(self.left + self.width, other.left + other.width)
        y1 = min(self.top + self.height, other.top + other.height)
        return Window(x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None

    def contains(self, box) -> bool:
        """Whether a pixel-edge xyxy box lies wholly inside this window."""
        x0, y0, x1, y1 = self.xyxy
        return bool(box[0] >= x0 and box[1] >= y0 and box[2] <= x1 and box[3] <= y1)


def check_tiling(tile: int, overlap: int) -> None:
    """Refuse a tile side and overlap that cannot draw a grid, saying what to give."""
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 32:
        raise InvalidOptionError(f"The tile side must be a whole number of pixels >= 32 (e.g. {TILE}), got {tile!r}.")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= tile // 2:
        raise InvalidOptionError(
            f"The tile overlap must be a whole number of pixels from 0 to half the tile ({tile // 2}), got {overlap!r}; "
            f"e.g. --tile {TILE} --overlap {OVERLAP}.")


def tile_windows(height: int, width: int, tile: int = TILE, overlap: int = OVERLAP, region: Window | None = None) -> list[Window]:
    """Row-major tiles of at most tile x tile pixels covering region (default: the whole (H, W) image),
    neighbours sharing overlap pixels; the last row and column end at the region's edge, so every
    tile but those of a region smaller than a tile is tile x tile."""
    check_tiling(tile, overlap)
    area = Window(0, 0, width, height) if region is None else region.intersection(Window(0, 0, width, height))
    if area is None:
        raise InvalidOptionError(f"The region {region.xyxy} lies outside the {width} x {height} image; give one inside it.")
    return [Window(left, top, min(tile, area.width), min(tile, area.height))
            for top in _starts(area.top, area.height, tile, overlap)
            for left in _starts(area.left, area.width, tile, overlap)]


def _starts(origin: int, length: int, tile: int, overlap: int) -> list[int]:
    """Where tiles start along one side: every tile - overlap pixels, the last one moved back to end at the edge."""
    if length <= tile:
        return [origin]
    starts = list(range(origin, origin + length - tile, tile - overlap))
    return [*starts, origin + length - tile]
