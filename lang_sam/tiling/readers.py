"""Where tiles come from: a reader gives the (h, w, 3) uint8 pixels of any window of a large image
and which of them hold data, without the whole image in memory.

``ArrayReader`` serves an image already in memory; ``RasterReader`` reads GeoTIFF and the other
GDAL formats window by window through rasterio (a tiled TIFF reads only the blocks a window
touches), with band selection, a percentile stretch of 16-bit and float data to 8 bits, and the
raster's nodata never segmented.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lang_sam.errors import InvalidImageError, InvalidOptionError
from lang_sam.tiling.windows import Window

STRETCH = (2.0, 98.0)  # percentiles mapped to 0 and 255 for data wider than 8 bits (QGIS's default cumulative cut)
OVERVIEW_SIDE = 2048  # the longest side of the decimated read the stretch is computed from
GEO_EXTRA = "pip install 'lang-sam[geo]'"
# Bytes of GDAL's block cache while a raster is read or a label raster written (GDAL's default is 5%
# of RAM): two rows of 512-pixel RGB blocks of a 20,000-pixel wide raster, so that a tile row's
# overlap is read from the cache, whatever the raster's size.
GDAL_CACHE = 64 * 2**20


@runtime_checkable
class TileReader(Protocol):
    """A large image read window by window. transform: rasterio's Affine from pixel (column, row)
    to map coordinates, or None (pixels are the coordinates); crs: a rasterio CRS or None."""

    height: int
    width: int
    transform: Any
    crs: Any

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(h, w, 3) uint8 RGB pixels of the window and (h, w) bool: which of them hold data."""

    def overview(self, longest_side: int) -> np.ndarray:
        """(h, w, 3) uint8 of the whole image shrunk so that its longest side is at most longest_side."""


def pixel_boxes(boxes, transform: Any) -> np.ndarray:
    """(M, 4) pixel-edge xyxy boxes of (M, 4) map-coordinate boxes (x_min, y_min, x_max, y_max in the
    raster's CRS) through its transform: the pixel box holding each map box's corners."""
    if transform is None:
        raise InvalidOptionError("Boxes in map coordinates need a georeferenced raster; this one has no transform: give pixels.")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    inverse = ~transform
    corners = [np.array(inverse @ (boxes[:, x], boxes[:, y])) for x, y in ((0, 1), (2, 3), (0, 3), (2, 1))]
    columns, rows = np.stack([c[0] for c in corners]), np.stack([c[1] for c in corners])
    return np.stack([np.floor(columns.min(0)), np.floor(rows.min(0)), np.ceil(columns.max(0)), np.ceil(rows.max(0))], 1).astype(np.float32)


def require_geo(module: str) -> Any:
    """Import one of the geo extra's packages, or say how to install them."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InvalidOptionError(f"Rasters and map outputs need {module}, which is not installed: {GEO_EXTRA}.") from None


class ArrayReader:
    """Tiles of an (H, W, 3) uint8 image in memory. valid: (H, W) bool, False where there is no data
    (default: all data); transform and crs as TileReader's (default: pixels)."""

    def __init__(self, image: np.ndarray, valid: np.ndarray | None = None, transform: Any = None, crs: Any = None) -> None:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise InvalidImageError(f"ArrayReader takes an (H, W, 3) uint8 RGB image, got shape {image.shape} {image.dtype}.")
        if valid is not None and np.shape(valid) != image.shape[:2]:
            raise InvalidImageError(f"ArrayReader's valid mask must be (H, W) = {image.shape[:2]}, got {np.shape(valid)}.")
        self.image, self.valid = image, None if valid is None else np.asarray(valid, bool)
        self.height, self.width = image.shape[:2]
        self.transform, self.crs = transform, crs

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        rows, columns = slice(window.top, window.top + window.height), slice(window.left, window.left + window.width)
        valid = np.ones((window.height, window.width), bool) if self.valid is None else self.valid[rows, columns]
        return self.image[rows, columns], valid

    def overview(self, longest_side: int) -> np.ndarray:
        step = max(1, -(-max(self.height, self.width) // longest_side))
        return self.image[::step, ::step]


class RasterReader:
    """A GeoTIFF (or any raster GDAL reads) read window by window, as a context manager or closed by close().

    bands: the 1-based bands shown as red, green, blue (e.g. (4, 3, 2) for a Sentinel-2 true colour),
    or one band shown grey; default (1, 2, 3), or (1,) for a one-band raster. 8-bit bands are taken
    as they are; wider ones (uint16, int16, float) are stretched linearly, band by band, from their
    stretch percentiles (low, high) to 0 and 255, clipped: the percentiles are computed once, from a
    decimated read of the whole band (longest side OVERVIEW_SIDE, GDAL's overviews when the file has
    them) that leaves out nodata. A pixel is data where every selected band's GDAL mask says so
    (the nodata value, an alpha band or a mask band); nodata pixels are never segmented."""

    def __init__(self, path: str | Path, bands: tuple[int, ...] | None = None, stretch: tuple[float, float] = STRETCH) -> None:
        rasterio = require_geo("rasterio")
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidImageError(f"Raster {self.path} does not exist or is not a file.")
        try:
            self.dataset = rasterio.open(self.path)
        except rasterio.errors.RasterioIOError as error:
            raise InvalidImageError(f"Raster {self.path} cannot be read ({error}); is it a complete GeoTIFF or other GDAL raster?") from None
        try:
            self.bands = _checked_bands(bands, self.dataset.count, self.path)
            self.height, self.width = self.dataset.height, self.dataset.width
            georeferenced = self.dataset.crs is not None or not self.dataset.transform.is_identity
            self.transform = self.dataset.transform if georeferenced else None
            self.crs = self.dataset.crs
            self.ranges = None if self.dataset.dtypes[self.bands[0] - 1] == "uint8" else self._stretch_ranges(stretch)
        except BaseException:
            self.dataset.close()
            raise

    def __enter__(self) -> RasterReader:  # noqa: PYI034 (Self is Python 3.11)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.dataset.close()

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        from rasterio.windows import Window as RasterWindow

        box = RasterWindow(window.left, window.top, window.width, window.height)
        with self._reading(f"at pixels {window.xyxy}"):
            values = self.dataset.read(self.bands, window=box)
            valid = (self.dataset.read_masks(self.bands, window=box) > 0).all(axis=0)
        return self._rgb(values), valid

    @contextmanager
    def _reading(self, where: str) -> Iterator[None]:
        """rasterio's errors on a truncated or corrupt block as InvalidImageError naming the file;
        GDAL's block cache held to GDAL_CACHE meanwhile."""
        import rasterio
        from rasterio.errors import RasterioError

        try:
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE):
                yield
        except RasterioError as error:
            raise InvalidImageError(f"Raster {self.path} cannot be read {where} ({error}); the file may be truncated.") from None

    def overview(self, longest_side: int) -> np.ndarray:
        return self._rgb(self._decimated(longest_side))

    def _decimated(self, longest_side: int) -> np.ndarray:
        """(bands, h, w) values of the whole raster read at a reduced size (GDAL picks overviews)."""
        scale = max(1.0, max(self.height, self.width) / longest_side)
        shape = (len(self.bands), max(1, round(self.height / scale)), max(1, round(self.width / scale)))
        with self._reading("as an overview"):
            return self.dataset.read(self.bands, out_shape=shape)

    def _stretch_ranges(self, stretch: tuple[float, float]) -> np.ndarray:
        """(bands, 2) the low and high values mapped to 0 and 255, from a decimated read leaving out nodata."""
        low, high = stretch
        if not 0 <= low < high <= 100:
            raise InvalidOptionError(f"The stretch percentiles must be 0 <= low < high <= 100, got {stretch}.")
        values = self._decimated(OVERVIEW_SIDE).astype(np.float64)
        shape = (len(self.bands), *values.shape[1:])
        with self._reading("as an overview"):
            valid = (self.dataset.read_masks(self.bands, out_shape=shape) > 0).all(axis=0) & np.isfinite(values).all(axis=0)
        if not valid.any():
            raise InvalidImageError(f"Raster {self.path} holds only nodata in bands {self.bands}: nothing to segment.")
        return np.array([np.percentile(band[valid], (low, high)) for band in values])

    def _rgb(self, values: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 of (bands, h, w) values: stretched when wider than 8 bits, grey from one band."""
        if self.ranges is not None:
            low, high = self.ranges[:, :1, None], self.ranges[:, 1:, None]
            values = np.nan_to_num((values - low) * 255.0 / np.maximum(high - low, 1e-12), nan=0.0)
            values = np.clip(values, 0, 255).round()
        rgb = np.moveaxis(values.astype(np.uint8), 0, -1)
        return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else np.ascontiguousarray(rgb)


def _checked_bands(bands: tuple[int, ...] | None, count: int, path: Path) -> tuple[int, ...]:
    if bands is None:
        if count in (1, 2):
            return (1,)
        return (1, 2, 3)
    bands = tuple(bands)
    if len(bands) not in (1, 3) or any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 1 <= b <= count for b in bands):
        raise InvalidOptionError(
            f"Bands must be three (red, green, blue) or one (grey) of the raster's bands 1 to {count}, e.g. 4,3,2; "
            f"got {bands} for {path}.")
    return tuple(int(b) for b in bands)
