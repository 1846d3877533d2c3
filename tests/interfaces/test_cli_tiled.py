"""lang-sam predict and everything with --tile: rasters in, label GeoTIFF, polygons, preview and
summary out, the same objects as lang_sam.tiling gives; bad options and files are messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lang_sam.interfaces.cli import main

rasterio = pytest.importorskip("rasterio")
geopandas = pytest.importorskip("geopandas")
from rasterio import features
from rasterio.transform import from_origin

TRANSFORM = from_origin(300000.0, 5000000.0, 2.0, 2.0)


@pytest.fixture
def raster(tmp_path):
    """A 4-band uint16 GeoTIFF, 240 x 420 (two 256-pixel tiles), nodata 0 in its first 20 rows."""
    rng = np.random.default_rng(0)
    values = rng.integers(200, 3000, (4, 240, 420), dtype=np.uint16)
    values[:, :20] = 0
    path = tmp_path / "in" / "scene.tif"
    path.parent.mkdir()
    with rasterio.open(path, "w", driver="GTiff", width=420, height=240, count=4, dtype="uint16", crs="EPSG:32631",
                       transform=TRANSFORM, nodata=0) as dataset:
        dataset.write(values)
    return path


def models(sam_files, tiny_detector_dir) -> list[str]:
    return ["--sam-checkpoint", str(sam_files[0]), "--detector", str(tiny_detector_dir), "--device", "cpu", "--dtype", "float32"]


def test_predict_tiled_writes_what_the_library_finds(raster, tmp_path, sam_files, tiny_detector_dir):
    from lang_sam.pipeline import LangSAM
    from lang_sam.tiling import RasterReader, pixel_boxes, segment_tiles

    box_on_map = [*TRANSFORM @ (300, 230), *TRANSFORM @ (400, 130)]
    out = tmp_path / "out"
    code = main(["predict", str(raster), "--prompt", "roof, tree", "--tile", "256", "--overlap", "32", "--bands", "4,3,2",
                 "--boxes", ",".join(map(str, box_on_map)), "--map-coordinates", "--vectors", "gpkg,geojson", "--out", str(out),
                 "--max-detections", "3", "--box-threshold", "0", "--text-threshold", "0", *models(sam_files, tiny_detector_dir)])
    assert code == 0
    assert sorted(path.name for path in out.iterdir()) == ["scene.geojson", "scene.gpkg", "scene.json", "scene.labels.tif", "scene.png"]
    model = LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype="float32")
    with RasterReader(raster, bands=(4, 3, 2)) as reader:
        expected = segment_tiles(model, reader, "roof, tree", 256, 32, boxes=pixel_boxes([box_on_map], reader.transform),
                                 max_detections=3, box_threshold=0.0, text_threshold=0.0)
    summary = json.loads((out / "scene.json").read_text())
    assert summary["objects"] == len(expected) > 0 and summary["crs"] == "EPSG:32631"
    assert summary["image"] == {"height": 240, "width": 420} and summary["vectors"] == ["scene.gpkg", "scene.geojson"]
    table = geopandas.read_file(out / "scene.gpkg")
    assert table.crs.to_epsg() == 32631 and table["label"].tolist() == expected.labels and "roof" in expected.labels
    for shape, mask in zip(table.geometry, expected.dense_masks()):
        assert np.array_equal(features.rasterize([shape], out_shape=mask.shape, transform=TRANSFORM).astype(bool), mask)
    with rasterio.open(out / "scene.labels.tif") as labels:
        assert labels.crs.to_epsg() == 32631 and labels.transform == TRANSFORM
        assert not labels.read(1)[:20].any(), "nodata rows are in no object"


def test_everything_tiled_on_a_plain_image_writes_pixel_coordinates(tmp_path, sam_files, monkeypatch):
    from PIL import Image

    from tests.conftest import synthetic_image

    Image.fromarray(synthetic_image(200, 300)).save(tmp_path / "photo.png")
    monkeypatch.setenv("LANG_SAM_TILE", "160")  # the setting, read as every other is
    code = main(["everything", str(tmp_path / "photo.png"), "--overlap", "16", "--points-per-side", "2", "--pred-iou-thresh", "0",
                 "--stability-score-thresh", "0", "--out", str(tmp_path / "out"), "--sam-checkpoint", str(sam_files[0]),
                 "--device", "cpu", "--dtype", "float32"])
    assert code == 0
    summary = json.loads((tmp_path / "out" / "photo.json").read_text())
    assert summary["crs"] is None and summary["transform"] is None and summary["objects"] >= 1
    table = geopandas.read_file(tmp_path / "out" / "photo.gpkg")
    assert table.crs is None and table.total_bounds[2] <= 300 and table.total_bounds[3] <= 200


@pytest.mark.parametrize(("flags", "message"), [
    (["--overlap", "16"], "--overlap is for tiled runs"),
    (["--map-coordinates"], "--map-coordinates is for tiled runs"),
    (["--tile", "100", "--overlap", "51"], "overlap must be"),
    (["--tile", "big"], "whole number"),
    (["--tile", "256", "--vectors", "kml"], "--vectors takes"),
    (["--tile", "256", "--bands", "5,3,2"], "4,3,2"),
    (["--tile", "256", "--points", "5,5"], "--points are not taken"),
])
def test_bad_tiling_options_are_messages(raster, tmp_path, sam_files, tiny_detector_dir, capsys, flags, message):
    code = main(["predict", str(raster), "--prompt", "roof", *flags, "--out", str(tmp_path / "out"), *models(sam_files, tiny_detector_dir)])
    error = capsys.readouterr().err
    assert code != 0 and message in error and "Traceback" not in error


def test_a_truncated_raster_is_skipped_with_a_message_and_nothing_half_written(raster, tmp_path, sam_files, tiny_detector_dir, capsys):
    data = raster.read_bytes()
    (raster.parent / "broken.tif").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    code = main(["predict", str(raster.parent), "--prompt", "roof", "--tile", "256", "--overlap", "32", "--out", str(out), "--max-detections", "1",
                 *models(sam_files, tiny_detector_dir)])
    error = capsys.readouterr().err
    assert code == 1 and "skipped" in error and "broken.tif" in error and "1 of 2 rasters written" in error
    assert sorted(path.name for path in out.iterdir()) == ["scene.gpkg", "scene.json", "scene.labels.tif", "scene.png"]


def test_label_tiled_writes_coco_and_yolo_of_what_the_library_finds(raster, tmp_path, sam_files, tiny_detector_dir):
    """lang-sam label --tile on a folder of rasters: COCO masks are segment_tiles' for the same run,
    a YOLO label file per raster, and a truncated raster listed as unreadable."""
    from pycocotools import mask as mask_utils

    from lang_sam.pipeline import LangSAM
    from lang_sam.tiling import RasterReader, segment_tiles

    (raster.parent / "broken.tif").write_bytes(raster.read_bytes()[:3000])
    out = tmp_path / "labelled"
    code = main(["label", str(raster.parent), "--classes", "roof, tree", "--tile", "256", "--overlap", "32", "--bands", "4,3,2",
                 "--yolo", "--out", str(out), "--max-detections", "3", "--box-threshold", "0", "--text-threshold", "0",
                 *models(sam_files, tiny_detector_dir)])
    assert code == 0
    model = LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype="float32")
    with RasterReader(raster, bands=(4, 3, 2)) as reader:
        expected = segment_tiles(model, reader, "roof, tree", 256, 32, max_detections=3, box_threshold=0.0, text_threshold=0.0)
    coco = json.loads((out / "annotations.json").read_text())
    assert coco["images"] == [{"id": 1, "file_name": "scene.tif", "height": 240, "width": 420}]
    assert [category["name"] for category in coco["categories"]] == ["roof", "tree"]
    annotations = coco["annotations"]
    assert len(annotations) == len(expected) > 3, "more objects than one tile's --max-detections: every tile ran"
    for annotation, mask, label in zip(annotations, expected.dense_masks(), expected.labels):
        rle = {"size": annotation["segmentation"]["size"], "counts": annotation["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), mask) and coco["categories"][annotation["category_id"] - 1]["name"] == label
    report = json.loads((out / "report.json").read_text())
    assert [failure["file_name"] for failure in report["unreadable"]] == ["broken.tif"] and "cannot be read" in report["unreadable"][0]["error"]
    assert (out / "dataset.yaml").is_file() and (out / "labels" / "scene.txt").read_text().strip()


def test_label_tile_refuses_what_it_does_not_take(raster, tmp_path, capsys):
    code = main(["label", str(raster.parent), "--everything", "--tile", "256", "--out", str(tmp_path / "out")])
    assert code != 0 and "--tile labels a local folder of rasters with --classes" in capsys.readouterr().err
