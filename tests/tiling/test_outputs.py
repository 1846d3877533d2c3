"""Georeferenced outputs: each object's polygon rasterised back through the transform is its mask,
its vertices are rasterio.transform.xy of mask pixel corners, the CRS survives GeoPackage, the
label raster holds each id on its object's pixels, and nothing is half-written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lang_sam.errors import InvalidOptionError
from lang_sam.tiling import OBJECT_ID_KEY, RasterReader, pixel_boxes, segment_tiles
from lang_sam.tiling.outputs import polygons, preview, write_label_raster, write_vectors
from lang_sam.vocabulary import Detections
from tests.conftest import shared_image

rasterio = pytest.importorskip("rasterio")
geopandas = pytest.importorskip("geopandas")
from rasterio import features
from rasterio.transform import from_origin, xy

TRANSFORM = from_origin(500000.0, 4100000.0, 0.5, 0.5)
CRS = "EPSG:32633"


def blobs(size=(180, 240), seed=0) -> np.ndarray:
    """(3, H, W) irregular masks: smoothed noise thresholds, one with holes and several pieces."""
    rng = np.random.default_rng(seed)
    masks = []
    for threshold in (0.6, 0.5, 0.7):
        noise = rng.random((size[0] // 10, size[1] // 10))
        smooth = np.asarray(Image.fromarray((noise * 255).astype(np.uint8)).resize(size[::-1], Image.BILINEAR)) / 255
        masks.append(smooth > threshold)
    return np.array(masks)


def detections_of(masks: np.ndarray) -> Detections:
    boxes = [[np.flatnonzero(m.any(0))[0], np.flatnonzero(m.any(1))[0], np.flatnonzero(m.any(0))[-1] + 1, np.flatnonzero(m.any(1))[-1] + 1]
             for m in masks]
    return Detections(xyxy=np.array(boxes, np.float32), image_size=masks.shape[1:], masks=masks,
                      box_scores=[0.9, 0.8, 0.7], mask_scores=[0.5, 0.6, 0.4], class_ids=[0, 1, 0], classes=("tree", "roof"),
                      data={OBJECT_ID_KEY: np.array([1, 2, 3])}).compact()


def assert_polygons_are_the_masks(shapes, masks: np.ndarray, transform) -> None:
    for shape, mask in zip(shapes, masks):
        assert shape.is_valid
        drawn = features.rasterize([shape], out_shape=mask.shape, transform=transform).astype(bool)
        assert (drawn & mask).sum() / (drawn | mask).sum() > 0.99
        columns, rows = ~transform @ np.array([point for ring in _rings(shape) for point in ring.coords]).T
        assert np.allclose(columns, np.round(columns), atol=1e-6) and np.allclose(rows, np.round(rows), atol=1e-6)
        columns, rows = np.round(columns).astype(int), np.round(rows).astype(int)
        expected = np.array(xy(transform, rows, columns, offset="ul")).T
        assert np.allclose(np.array([point for ring in _rings(shape) for point in ring.coords]), expected, rtol=0, atol=1e-6)
        padded = np.pad(mask, 1)  # each vertex is a corner of a mask pixel
        assert (padded[rows, columns] | padded[rows + 1, columns] | padded[rows, columns + 1] | padded[rows + 1, columns + 1]).all()


def _rings(shape):
    for polygon in getattr(shape, "geoms", [shape]):
        yield polygon.exterior
        yield from polygon.interiors


def test_polygons_rasterise_back_to_their_masks_at_pixel_corners():
    masks = blobs()
    assert_polygons_are_the_masks(polygons(detections_of(masks), TRANSFORM), masks, TRANSFORM)
    assert_polygons_are_the_masks(polygons(detections_of(masks)), masks, rasterio.Affine.identity())


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".shp"])
def test_vectors_keep_crs_fields_and_areas_in_map_units(tmp_path, suffix):
    masks = blobs(seed=1)
    write_vectors(tmp_path / f"objects{suffix}", detections_of(masks), TRANSFORM, CRS)
    table = geopandas.read_file(tmp_path / f"objects{suffix}")
    assert table.crs.to_epsg() == 32633
    assert table["id"].tolist() == [1, 2, 3] and table["label"].tolist() == ["tree", "roof", "tree"]
    assert table["box_score"].tolist() == pytest.approx([0.9, 0.8, 0.7]) and table["mask_score"].tolist() == pytest.approx([0.5, 0.6, 0.4])
    assert table["area"].tolist() == pytest.approx((masks.sum(axis=(1, 2)) * 0.25).tolist()), "square metres: 0.25 a pixel"
    assert_polygons_are_the_masks(list(table.geometry), masks, TRANSFORM)
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == []


def test_the_label_raster_holds_each_id_on_its_pixels_smaller_objects_on_top(tmp_path, monkeypatch):
    from lang_sam.tiling import outputs

    monkeypatch.setattr(outputs, "BLOCK", 64)  # many blocks, objects cut by their edges
    masks = blobs(seed=2)
    write_label_raster(tmp_path / "labels.tif", detections_of(masks), TRANSFORM, CRS)
    with rasterio.open(tmp_path / "labels.tif") as dataset:
        labels = dataset.read(1)
        assert dataset.crs.to_epsg() == 32633 and dataset.transform == TRANSFORM and dataset.nodata == 0
        assert dataset.profile["tiled"] and dataset.profile["compress"] == "deflate" and dataset.dtypes == ("uint32",)
    expected = np.zeros(masks.shape[1:], np.uint32)
    for index in np.argsort(-masks.sum(axis=(1, 2)), kind="stable"):
        expected[masks[index]] = index + 1
    assert np.array_equal(labels, expected)


def test_unwritable_or_unknown_outputs_are_refused_and_nothing_is_left(tmp_path, monkeypatch):
    from lang_sam.tiling import outputs

    found = detections_of(blobs())
    with pytest.raises(InvalidOptionError, match="does not exist"):
        write_vectors(tmp_path / "missing" / "objects.gpkg", found)
    with pytest.raises(InvalidOptionError, match=".gpkg"):
        write_vectors(tmp_path / "objects.kml", found)
    monkeypatch.setattr(outputs, "BLOCK", 64)
    painted = []

    def disk_full(*args):
        painted.append(args)
        if len(painted) > 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs._LabelPainter, "_paint", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_label_raster(tmp_path / "labels.tif", found)
    assert list(tmp_path.iterdir()) == [], "a failed write leaves no file, half-written or temporary"


def test_a_folder_that_cannot_be_written_is_refused(tmp_path):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("not a folder")  # a path under a file cannot be written, by root either
    with pytest.raises(InvalidOptionError, match="Cannot write"):
        write_label_raster(not_a_folder / "labels.tif", detections_of(blobs()))
    assert not_a_folder.read_text() == "not a folder"


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    """A 2 x 2 mosaic of shared photos (each 300 x 300) as a georeferenced GeoTIFF, nodata 0 in a corner strip."""
    photos = [np.asarray(Image.fromarray(shared_image(name)).resize((300, 300))) for name in ("truck.jpg", "dog.jpg", "food.jpg", "car.jpeg")]
    image = np.concatenate([np.concatenate(photos[:2], 1), np.concatenate(photos[2:], 1)], 0).copy()
    image[:40, :40] = 0
    path = tmp_path_factory.mktemp("mosaic") / "mosaic.tif"
    with rasterio.open(path, "w", driver="GTiff", width=600, height=600, count=3, dtype="uint8", crs=CRS, transform=TRANSFORM,
                       nodata=0, tiled=True, blockxsize=128, blockysize=128) as dataset:
        dataset.write(image.transpose(2, 0, 1))
    return path


def test_a_mosaic_segmented_in_tiles_gives_georeferenced_outputs_that_agree(mosaic, tmp_path, sam_files, tiny_detector_dir):
    """Boxes (in pixels and in map coordinates) segmented by a tiny random SAM in 320-pixel tiles: the
    masks are SAM's, irregular; their polygons, label raster and preview must agree with them."""
    from lang_sam.pipeline import LangSAM

    model = LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype="float32")
    pixel = np.array([[10, 10, 150, 120], [300, 20, 460, 200], [60, 330, 250, 560], [420, 400, 590, 590]], np.float32)
    with RasterReader(mosaic) as reader:
        on_map = np.array([[*TRANSFORM @ (330, 590), *TRANSFORM @ (580, 300)]])  # x_min, y_min, x_max, y_max in metres
        boxes = np.concatenate([pixel, pixel_boxes(on_map, reader.transform)])
        found = segment_tiles(model, reader, None, tile=320, overlap=40, boxes=boxes, label="thing")
        write_label_raster(tmp_path / "labels.tif", found, reader.transform, reader.crs)
        write_vectors(tmp_path / "objects.gpkg", found, reader.transform, reader.crs)
        drawing = preview(reader, tmp_path / "labels.tif", longest_side=200)
    assert boxes[-1].tolist() == [330, 300, 580, 590]
    masks = found.dense_masks()
    assert len(found) == 5 and drawing.shape == (200, 200, 3) and (masks.sum(axis=(1, 2)) > 100).all()
    assert not masks[:, :40, :40].any(), "nodata is never segmented"
    table = geopandas.read_file(tmp_path / "objects.gpkg")
    assert table.crs.to_epsg() == 32633 and table["id"].tolist() == found.data[OBJECT_ID_KEY].tolist()
    assert_polygons_are_the_masks(list(table.geometry), masks, TRANSFORM)
    with rasterio.open(tmp_path / "labels.tif") as dataset:
        labels = dataset.read(1)
    smallest_on_top = np.argsort(masks.sum(axis=(1, 2)), kind="stable")[:3]
    for index in smallest_on_top:
        assert (labels[masks[index]] != 0).all()
    assert set(np.unique(labels)) <= {0, *found.data[OBJECT_ID_KEY].tolist()}


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".shp"])
def test_no_objects_give_an_empty_label_raster_and_empty_vectors(tmp_path, suffix):
    from lang_sam.tiling import merge_tiles

    nothing = merge_tiles([], (70, 90))
    write_label_raster(tmp_path / "labels.tif", nothing, TRANSFORM, CRS)
    write_vectors(tmp_path / f"objects{suffix}", nothing, TRANSFORM, CRS)
    with rasterio.open(tmp_path / "labels.tif") as dataset:
        assert dataset.shape == (70, 90) and not dataset.read(1).any()
    assert len(geopandas.read_file(tmp_path / f"objects{suffix}")) == 0


def test_an_object_joined_across_the_raster_is_built_and_written_a_strip_at_a_time(tmp_path, monkeypatch):
    """A road across the raster's diagonal (with holes and a side branch), seen through 25 tiles, is
    joined into one object whose box is the raster's: with strips of 3,000 pixels (as a 16 M-pixel
    strip is to a 20,000-pixel raster) its mask, box, label raster and polygon are those of one strip."""
    from lang_sam.tiling import merge_tiles, tile_windows
    from lang_sam.tiling.merge import TileDetections, to_image
    from lang_sam.vocabulary import strips

    size = (600, 640)
    rows, columns = np.mgrid[:size[0], :size[1]]
    road = (np.abs(columns - rows * 1.05) <= 14) | ((np.abs(rows - 300) <= 6) & (columns > 315) & (columns < 520))
    road &= ~((rows % 97 < 5) & (columns % 89 < 5))  # holes along it
    tiles = []
    for window in tile_windows(*size, 160, 40):
        part = road[window.top:window.top + window.height, window.left:window.left + window.width]
        if part.any():
            ys, xs = np.flatnonzero(part.any(1)), np.flatnonzero(part.any(0))
            found = Detections(xyxy=np.array([[xs[0], ys[0], xs[-1] + 1, ys[-1] + 1]], np.float32), image_size=part.shape,
                               masks=part[None], box_scores=[0.9], mask_scores=[0.5], class_ids=[0], classes=("road",))
            tiles.append(TileDetections(window, to_image(found, window, size, ["road"])))
    assert len(tiles) >= 9

    def written(folder):
        joined = merge_tiles(tiles, size)
        write_label_raster(folder / "labels.tif", joined, TRANSFORM, CRS)
        with rasterio.open(folder / "labels.tif") as dataset:
            return joined, dataset.read(1), polygons(joined, TRANSFORM)

    (tmp_path / "whole").mkdir(), (tmp_path / "strips").mkdir()
    whole, whole_labels, whole_shapes = written(tmp_path / "whole")
    monkeypatch.setattr(strips, "STRIP_PIXELS", 3000)
    assert len(strips.column_spans(*size)) > 100
    cut, cut_labels, cut_shapes = written(tmp_path / "strips")
    assert len(whole) == len(cut) == 1 and np.array_equal(whole.masks.to_dense(), road[None]) and np.array_equal(cut.masks.to_dense(), road[None])
    assert np.array_equal(cut.xyxy, whole.xyxy) and np.array_equal(cut_labels, whole_labels) and np.array_equal(cut_labels == 1, road)
    assert cut_shapes[0].is_valid and cut_shapes[0].symmetric_difference(whole_shapes[0]).area < 1e-6 * whole_shapes[0].area
    assert_polygons_are_the_masks(cut_shapes, road[None], TRANSFORM)
