"""Rasters read window by window: band selection, the 16-bit stretch, nodata, and bad files."""

from __future__ import annotations

import numpy as np
import pytest

from lang_sam.errors import InvalidImageError, InvalidOptionError
from lang_sam.tiling import ArrayReader, RasterReader, Window

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import from_origin

TRANSFORM = from_origin(500000.0, 4100000.0, 0.5, 0.5)  # UTM metres, half-metre pixels


def write_raster(path, values: np.ndarray, nodata=None, crs="EPSG:32633", transform=TRANSFORM) -> None:
    bands, height, width = values.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=bands, dtype=values.dtype,
                       crs=crs, transform=transform, nodata=nodata, tiled=True, blockxsize=64, blockysize=64) as dataset:
        dataset.write(values)


def test_an_8_bit_raster_reads_as_written_with_its_georeference(tmp_path):
    values = np.random.default_rng(0).integers(0, 256, (3, 150, 200), dtype=np.uint8)
    write_raster(tmp_path / "rgb.tif", values)
    with RasterReader(tmp_path / "rgb.tif") as reader:
        pixels, valid = reader.read(Window(30, 40, 100, 64))
        assert (reader.height, reader.width) == (150, 200) and reader.crs.to_epsg() == 32633 and reader.transform == TRANSFORM
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, values[:, 40:104, 30:130].transpose(1, 2, 0)) and valid.all()


def test_16_bit_bands_are_chosen_and_stretched_from_their_percentiles_leaving_out_nodata(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.integers(100, 4000, (4, 120, 90), dtype=np.uint16)
    values[:, :10] = 0  # nodata rows
    write_raster(tmp_path / "s2.tif", values, nodata=0)
    with RasterReader(tmp_path / "s2.tif", bands=(4, 3, 2)) as reader:
        pixels, valid = reader.read(Window(0, 0, 90, 120))
    assert not valid[:10].any() and valid[10:].all()
    expected = []
    for band in (3, 2, 1):
        data = values[band, 10:].astype(np.float64)
        low, high = np.percentile(data, (2, 98))
        expected.append(np.clip(np.round((values[band].astype(np.float64) - low) * 255 / (high - low)), 0, 255))
    assert np.array_equal(pixels[10:], np.stack(expected, -1)[10:].astype(np.uint8))


def test_one_band_reads_grey_and_no_crs_means_pixels(tmp_path):
    values = np.arange(64 * 48, dtype=np.uint8).reshape(1, 64, 48)
    write_raster(tmp_path / "grey.tif", values, crs=None, transform=rasterio.Affine.identity())
    with RasterReader(tmp_path / "grey.tif") as reader:
        pixels, _ = reader.read(Window(0, 0, 48, 64))
        assert reader.crs is None and reader.transform is None
    assert np.array_equal(pixels, np.repeat(values[0][..., None], 3, 2))


def test_a_1x1_raster_reads(tmp_path):
    write_raster(tmp_path / "one.tif", np.full((3, 1, 1), 7, np.uint8))
    with RasterReader(tmp_path / "one.tif") as reader:
        pixels, valid = reader.read(Window(0, 0, 1, 1))
    assert pixels.tolist() == [[[7, 7, 7]]] and valid.tolist() == [[True]]


@pytest.mark.parametrize("bands", [(5, 3, 2), (1, 2), (0,)])
def test_bands_outside_the_raster_are_refused(tmp_path, bands):
    write_raster(tmp_path / "four.tif", np.zeros((4, 8, 8), np.uint16) + 5)
    with pytest.raises(InvalidOptionError, match="4,3,2"):
        RasterReader(tmp_path / "four.tif", bands=bands)


def test_a_corrupt_or_truncated_raster_is_a_clear_error(tmp_path):
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00 this is no tiff")
    with pytest.raises(InvalidImageError, match="cannot be read"):
        RasterReader(tmp_path / "corrupt.tif")
    values = np.random.default_rng(2).integers(0, 256, (3, 256, 256), dtype=np.uint8)
    write_raster(tmp_path / "whole.tif", values)
    data = (tmp_path / "whole.tif").read_bytes()
    (tmp_path / "truncated.tif").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InvalidImageError, match="cannot be read|truncated"), RasterReader(tmp_path / "truncated.tif") as reader:
        reader.read(Window(0, 0, 256, 256))
    with pytest.raises(InvalidImageError, match="does not exist"):
        RasterReader(tmp_path / "missing.tif")


def test_an_array_reader_serves_windows_and_refuses_what_is_not_rgb():
    image = np.random.default_rng(3).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    valid = np.ones((50, 60), bool)
    valid[:, :5] = False
    pixels, window_valid = ArrayReader(image, valid).read(Window(2, 3, 10, 20))
    assert np.array_equal(pixels, image[3:23, 2:12]) and np.array_equal(window_valid, valid[3:23, 2:12])
    with pytest.raises(InvalidImageError, match=r"\(H, W, 3\) uint8"):
        ArrayReader(image.astype(np.float32))
