"""What a tiled run leaves for GIS users: a label GeoTIFF (one id per object), polygons in
GeoPackage, GeoJSON or Shapefile, and a downscaled preview drawing; each in the raster's CRS and
transform (pixels when it has none), written without ever holding an image-sized mask."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lang_sam.errors import InvalidOptionError
from lang_sam.io.files import FILE_MODE, TEMPORARY_SUFFIX
from lang_sam.tiling.merge import OBJECT_ID_KEY
from lang_sam.tiling.readers import TileReader, require_geo
from lang_sam.tiling.windows import Window, tile_windows
from lang_sam.vocabulary.detections import Detections

VECTOR_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".shp": "ESRI Shapefile"}
BLOCK = 1024  # the label raster is painted this many pixels a side at a time
PREVIEW_SIDE = 2048


def object_ids(detections: Detections) -> np.ndarray:
    """(N,) the objects' ids: data["object_id"] of a tiled run, else 1..N."""
    return np.asarray(detections.data.get(OBJECT_ID_KEY, np.arange(1, len(detections) + 1)), np.int64)


def write_label_raster(path: str | Path, detections: Detections, transform: Any = None, crs: Any = None) -> None:
    """A GeoTIFF (tiled 256 x 256, deflate, uint32, nodata 0) where each object's pixels hold its id,
    painted largest object first (a smaller one on top stays visible), written block by block
    (BLOCK x BLOCK pixels in memory at a time) into a temporary file renamed into place."""
    rasterio = require_geo("rasterio")
    height, width = detections.image_size
    ids, masks = object_ids(detections), _compact(detections)
    order = np.argsort(-np.asarray(masks.area), kind="stable")
    boxes = masks.bbox_xyxy.reshape(-1, 4)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint32", "nodata": 0,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER",
               "crs": crs, "transform": transform if transform is not None else rasterio.Affine.identity()}

    def write(temporary: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # pixels: no transform is meant
            with rasterio.open(temporary, "w", **profile) as dataset:
                for block in tile_windows(height, width, BLOCK, 0):
                    canvas = np.zeros((block.height, block.width), np.uint32)
                    for index in order[_touching(boxes[order], block)]:
                        _paint(canvas, block, masks, int(index), ids[index])
                    dataset.write(canvas, 1, window=rasterio.windows.Window(block.left, block.top, block.width, block.height))

    _write_through_temporary(Path(path), write)


def polygons(detections: Detections, transform: Any = None) -> list:
    """One shapely Polygon per object (a MultiPolygon for several parts, empty for no pixel): its mask's
    pixel edges (4-connected), holes kept, in map coordinates through transform (pixel corners
    (column, row) when None); traced from each mask's crop."""
    rasterio, features, shapely = (require_geo(name) for name in ("rasterio", "rasterio.features", "shapely"))
    transform = transform if transform is not None else rasterio.Affine.identity()
    masks = _compact(detections)
    found = []
    for index in range(len(detections)):
        crop = masks.crop(index).astype(np.uint8)
        left, top = (int(value) for value in masks.offsets[index])
        pieces = [shapely.geometry.shape(shape) for shape, _ in
                  features.shapes(crop, mask=crop.astype(bool), transform=transform @ rasterio.Affine.translation(left, top))]
        # The pieces are the mask's 4-connected parts: disjoint (at most touching at a corner), so they
        # form a valid MultiPolygon as they are; a union would cost minutes on a speckled mask.
        found.append(pieces[0] if len(pieces) == 1 else shapely.MultiPolygon(pieces))
    return found


def write_vectors(path: str | Path, detections: Detections, transform: Any = None, crs: Any = None) -> None:
    """One feature per object (its polygon; id, label, box_score, mask_score, area in map units: the
    CRS's units squared, pixels without a transform) in a GeoPackage (.gpkg), GeoJSON (.geojson) or
    Shapefile (.shp, with its .shx, .dbf, .prj, .cpg), the format chosen by the suffix."""
    path = Path(path)
    driver = VECTOR_DRIVERS.get(path.suffix.lower())
    if driver is None:
        raise InvalidOptionError(f"Vectors are written as {', '.join(VECTOR_DRIVERS)}; got {path.name}.")
    geopandas = require_geo("geopandas")
    shapes = polygons(detections, transform)
    table = geopandas.GeoDataFrame({
        "id": object_ids(detections), "label": detections.labels,
        "box_score": _scores(detections.box_scores, len(detections)), "mask_score": _scores(detections.mask_scores, len(detections)),
        "area": [shape.area for shape in shapes],
    }, geometry=shapes, crs=crs)
    _write_through_temporary(path, lambda temporary: table.to_file(temporary, driver=driver, engine="pyogrio"))


def geojson(detections: Detections, transform: Any = None, crs: Any = None) -> dict[str, Any]:
    """write_vectors' GeoJSON as a dict (a FeatureCollection naming its CRS in "crs", as GDAL writes
    it), for answers that are not files (the server's format=geojson)."""
    import json

    with tempfile.TemporaryDirectory(prefix="lang-sam-geojson-") as folder:
        path = Path(folder) / "objects.geojson"
        write_vectors(path, detections, transform, crs)
        return json.loads(path.read_text(encoding="utf-8"))


def preview(reader: TileReader, detections: Detections, longest_side: int = PREVIEW_SIDE) -> np.ndarray:
    """(h, w, 3) uint8: the image shrunk to longest_side, each object's pixels blended with its own
    colour (largest first), sampled from each mask's crop (nearest pixel)."""
    image = reader.overview(longest_side).astype(np.float32)
    scale_y, scale_x = reader.height / image.shape[0], reader.width / image.shape[1]
    masks = _compact(detections)
    colours = np.random.default_rng(0).integers(40, 256, (max(len(detections), 1), 3))
    for index in np.argsort(-np.asarray(masks.area), kind="stable"):
        left, top = (int(value) for value in masks.offsets[index])
        crop = masks.crop(int(index))
        rows = np.arange(int(top / scale_y), min(image.shape[0], int(np.ceil((top + crop.shape[0]) / scale_y))))
        columns = np.arange(int(left / scale_x), min(image.shape[1], int(np.ceil((left + crop.shape[1]) / scale_x))))
        source_rows = np.clip((rows * scale_y).astype(int) - top, 0, crop.shape[0] - 1)
        source_columns = np.clip((columns * scale_x).astype(int) - left, 0, crop.shape[1] - 1)
        inside = crop[np.ix_(source_rows, source_columns)]
        region = image[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1] if len(rows) and len(columns) else None
        if region is not None:
            region[inside] = 0.5 * region[inside] + 0.5 * colours[index]
    return image.round().astype(np.uint8)


def _compact(detections: Detections):
    """The detections' masks as a CompactMask; outputs are drawn from masks, so they are required."""
    if detections.masks is None:
        raise InvalidOptionError("Label rasters, polygons and previews are drawn from masks; these detections hold boxes only.")
    return detections.compact().masks


def _scores(scores: np.ndarray | None, count: int) -> np.ndarray:
    return np.full(count, np.nan) if scores is None else scores.astype(np.float64)


def _touching(boxes: np.ndarray, block: Window) -> np.ndarray:
    """Which supervision (inclusive) boxes share pixels with block."""
    x0, y0, x1, y1 = block.xyxy
    return (boxes[:, 0] < x1) & (boxes[:, 2] >= x0) & (boxes[:, 1] < y1) & (boxes[:, 3] >= y0)


def _paint(canvas: np.ndarray, block: Window, masks, index: int, value: int) -> None:
    """Set canvas (block's pixels) to value where compact mask index is True."""
    left, top = (int(v) for v in masks.offsets[index])
    crop = masks.crop(index)
    shared = Window(left, top, crop.shape[1], crop.shape[0]).intersection(block)
    if shared is None:
        return
    piece = crop[shared.top - top:shared.top - top + shared.height, shared.left - left:shared.left - left + shared.width]
    target = canvas[shared.top - block.top:shared.top - block.top + shared.height,
                    shared.left - block.left:shared.left - block.left + shared.width]
    target[piece] = value


def _write_through_temporary(destination: Path, write: Callable[[Path], object]) -> None:
    """write(path) fills a temporary folder beside destination; the files it made (destination's name
    with any suffix, e.g. a Shapefile's .shx and .dbf) are then renamed into place: no half-written output."""
    if not destination.parent.is_dir():
        raise InvalidOptionError(f"Cannot write {destination}: the folder {destination.parent} does not exist.")
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=TEMPORARY_SUFFIX, dir=destination.parent))
    except OSError as error:
        raise InvalidOptionError(f"Cannot write {destination} ({error.strerror}); choose a folder you can write to.") from None
    try:
        write(folder / destination.name)
        for made in sorted(folder.iterdir()):
            os.chmod(made, FILE_MODE)
            os.replace(made, destination.parent / made.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
