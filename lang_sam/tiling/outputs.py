"""What a tiled run leaves for GIS users: a label GeoTIFF (one id per object), polygons in
GeoPackage, GeoJSON or Shapefile, and a downscaled preview drawing; each in the raster's CRS and
transform (pixels when it has none).

``write_tiled`` writes them from the stream of Detections chunks that stream_tiles gives, chunk by
chunk as the tiles run: never an image-sized mask, nor every object at once. Each file is made in
a temporary folder beside it and renamed into place when the stream has ended, so an error or
Ctrl+C on the way leaves none of them.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from lang_sam.errors import InvalidOptionError
from lang_sam.io.files import TEMPORARY_SUFFIX, write_files_atomically
from lang_sam.tiling.merge import OBJECT_ID_KEY
from lang_sam.tiling.readers import GDAL_CACHE, TileReader, require_geo
from lang_sam.tiling.windows import tile_windows
from lang_sam.vocabulary.detections import Detections
from lang_sam.vocabulary.strips import column_spans, decode_strips

VECTOR_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".shp": "ESRI Shapefile"}
# The layers' geometry type: a later object may have several parts, so the GeoPackage (written first,
# chunk by chunk) and the GeoJSON say Geometry, each feature a Polygon or MultiPolygon; a Shapefile's
# polygon type holds both.
GEOMETRY_TYPES = {"GPKG": "Unknown", "GeoJSON": "Unknown", "ESRI Shapefile": "Polygon"}
NO_CRS = "'crs' was not provided"  # pyogrio's warning for a raster in pixels, which has none: meant
BLOCK = 1024  # the label raster is copied into its GeoTIFF this many pixels a side at a time
PREVIEW_SIDE = 2048


def object_ids(detections: Detections) -> np.ndarray:
    """(N,) the objects' ids: data["object_id"] of a tiled run, else 1..N."""
    return np.asarray(detections.data.get(OBJECT_ID_KEY, np.arange(1, len(detections) + 1)), np.int64)


def write_tiled(chunks: Iterable[Detections], image_size: tuple[int, int], transform: Any = None, crs: Any = None, *,
                labels: str | Path | None = None, vectors: Sequence[str | Path] = ()) -> int:
    """Write the objects of chunks (stream_tiles' Detections, or any with compact or dense masks of
    an image_size (H, W) image) as they come: the label GeoTIFF labels (see write_label_raster) and
    the vector files vectors (see write_vectors). The files appear once chunks is exhausted; an
    error or Ctrl+C before leaves none. Returns how many objects were written."""
    labels, vectors = None if labels is None else Path(labels), [Path(path) for path in vectors]
    for path in vectors:
        _driver(path)
    with ExitStack() as stack:
        painter = None if labels is None else _LabelPainter(stack.enter_context(write_files_atomically(labels)), image_size, stack)
        store = None if not vectors else _VectorStore([stack.enter_context(write_files_atomically(path)) for path in vectors],
                                                      transform, crs, stack)
        written = 0
        for chunk in chunks:
            for writer in (painter, store):
                if writer is not None:
                    writer.add(chunk)
            written += len(chunk)
        if painter is not None:
            painter.finish(transform, crs)
        if store is not None:
            store.finish()
    return written


def write_label_raster(path: str | Path, detections: Detections, transform: Any = None, crs: Any = None) -> None:
    """A GeoTIFF (tiled 256 x 256, deflate, uint32, nodata 0) where each object's pixels hold its id;
    where objects overlap the smaller one is on top (of two of one size, the later one)."""
    write_tiled([detections], detections.image_size, transform, crs, labels=path)


class _LabelPainter:
    """The label raster painted object by object into a scratch file of uint32 pixels (unnamed,
    sparse: disk only for the rows objects touch), read and written a crop at a time, then copied
    BLOCK x BLOCK into the GeoTIFF: memory holds one object's crop, never the image."""

    def __init__(self, path: Path, image_size: tuple[int, int], stack: ExitStack) -> None:
        self.path, (self.height, self.width) = path, image_size
        self.scratch = stack.enter_context(tempfile.TemporaryFile(dir=path.parent))  # gone with the process, whatever ends it
        self.scratch.truncate(self.height * self.width * 4)
        self.ids, self.areas = np.zeros(0, np.int64), np.zeros(0, np.int64)  # what is painted, sorted by id

    def add(self, chunk: Detections) -> None:
        masks, ids = _compact(chunk), object_ids(chunk)
        if len(ids) and not (ids.min() >= 1 and ids.max() < 2**32):
            raise InvalidOptionError(f"Label raster ids must be whole numbers from 1 to 2**32 - 1, got {ids.min()} to {ids.max()}.")
        areas = np.asarray(masks.area, np.int64)
        order = np.argsort(np.concatenate([self.ids, ids]), kind="stable")
        self.ids, self.areas = np.concatenate([self.ids, ids])[order], np.concatenate([self.areas, areas])[order]
        for index in range(len(chunk)):
            left, top = (int(value) for value in masks.offsets[index])
            for first, strip in decode_strips(masks, index):  # an object across the raster: a strip at a time
                self._paint(strip, left + first, top, int(ids[index]), int(areas[index]))

    def _paint(self, crop: np.ndarray, left: int, top: int, value: int, area: int) -> None:
        """Set value where crop (at left, top) is True and the object there is not smaller than this one."""
        rows = np.flatnonzero(crop.any(axis=1))
        if not len(rows):
            return
        crop, top = crop[rows[0]:rows[-1] + 1], top + int(rows[0])  # only the rows it paints are mapped
        rows = np.memmap(self.scratch, np.uint32, "r+", offset=top * self.width * 4, shape=(crop.shape[0], self.width))
        window = rows[:, left:left + crop.shape[1]]
        under = window[crop]
        covered = self.areas[np.minimum(np.searchsorted(self.ids, under), len(self.ids) - 1)]
        window[crop] = np.where((under == 0) | (covered >= area), value, under)
        rows.flush()

    def finish(self, transform: Any, crs: Any) -> None:
        rasterio = require_geo("rasterio")
        profile = {"driver": "GTiff", "width": self.width, "height": self.height, "count": 1, "dtype": "uint32", "nodata": 0,
                   "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER",
                   "crs": crs, "transform": transform if transform is not None else rasterio.Affine.identity()}
        with warnings.catch_warnings(), rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE):
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # pixels: no transform is meant
            with rasterio.open(self.path, "w", **profile) as dataset:
                for block in tile_windows(self.height, self.width, BLOCK, 0):
                    rows = np.memmap(self.scratch, np.uint32, "r", offset=block.top * self.width * 4, shape=(block.height, self.width))
                    dataset.write(np.ascontiguousarray(rows[:, block.left:block.left + block.width]), 1,
                                  window=rasterio.windows.Window(block.left, block.top, block.width, block.height))


def polygons(detections: Detections, transform: Any = None) -> list:
    """One shapely Polygon per object (a MultiPolygon for several parts, empty for no pixel): its mask's
    pixel edges (4-connected), holes kept, in map coordinates through transform (pixel corners
    (column, row) when None); traced from each mask's crop, a column strip at a time for a huge one."""
    rasterio = require_geo("rasterio")
    transform = transform if transform is not None else rasterio.Affine.identity()
    masks = _compact(detections)
    return [_outline(masks, index, transform) for index in range(len(detections))]


def _outline(masks, index: int, transform: Any):
    """Compact mask index's polygon. The mask's 4-connected parts are disjoint (at most touching at
    a corner): a valid MultiPolygon as they are, where a union would cost minutes on a speckled mask.
    Traced in strips, only the parts cut by a strip's edge are joined (in pixels, then transformed)."""
    rasterio, features, shapely = (require_geo(name) for name in ("rasterio", "rasterio.features", "shapely"))
    x0, y0, x1, y1 = (int(value) for value in masks.bbox_xyxy[index])  # the crop's, inclusive
    pieces, cuts = [], {float(x0 + first) for first, _ in column_spans(y1 - y0 + 1, x1 - x0 + 1)[1:]}  # decode_strips' cuts
    for first, strip in decode_strips(masks, index):
        placed = (transform if not cuts else rasterio.Affine.identity()) @ rasterio.Affine.translation(x0 + first, y0)
        pieces += [shapely.geometry.shape(shape) for shape, _ in features.shapes(strip.view(np.uint8), mask=strip, transform=placed)]
    if cuts:
        cut = [piece.bounds[0] in cuts or piece.bounds[2] in cuts for piece in pieces]
        joined = shapely.union_all([piece for piece, on_edge in zip(pieces, cut) if on_edge])
        pieces = [piece for piece, on_edge in zip(pieces, cut) if not on_edge] + list(getattr(joined, "geoms", [joined]))
    shape = pieces[0] if len(pieces) == 1 else shapely.MultiPolygon(pieces)
    return require_geo("shapely.affinity").affine_transform(shape, transform.to_shapely()) if cuts else shape


def write_vectors(path: str | Path, detections: Detections, transform: Any = None, crs: Any = None) -> None:
    """One feature per object (its polygon; id, label, box_score, mask_score, area in map units: the
    CRS's units squared, pixels without a transform) in a GeoPackage (.gpkg), GeoJSON (.geojson) or
    Shapefile (.shp, with its .shx, .dbf, .prj, .cpg), the format chosen by the suffix."""
    write_tiled([detections], detections.image_size, transform, crs, vectors=[path])


class _VectorStore:
    """The objects' features appended chunk by chunk to a GeoPackage (the one asked for, else a
    scratch one), which the other formats are copied from at the end, streamed in batches: GDAL
    appends to a GeoPackage in constant time, to a GeoJSON only by rereading it."""

    def __init__(self, paths: list[Path], transform: Any, crs: Any, stack: ExitStack) -> None:
        self.paths, self.transform, self.crs = paths, transform, crs
        asked = [path for path in paths if _driver(path) == "GPKG"]
        if asked:
            self.store = asked[0]
        else:  # beside the outputs (paths are in temporary folders there), left for remove_leftovers if killed
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix=".lang-sam-vectors.", suffix=TEMPORARY_SUFFIX,
                                                                     dir=paths[0].parent.parent))
            self.store = Path(folder) / "objects.gpkg"
        self._append(_table(Detections(xyxy=np.zeros((0, 4)), image_size=(1, 1)), transform, crs), append=False)

    def add(self, chunk: Detections) -> None:
        if len(chunk):
            self._append(_table(chunk, self.transform, self.crs), append=True)

    def _append(self, table, append: bool) -> None:
        pyogrio = require_geo("pyogrio")  # >= 0.9 (its wheels bring GDAL >= 3.8, which writes Arrow streams)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", NO_CRS, UserWarning)
            pyogrio.write_dataframe(table, self.store, driver="GPKG", geometry_type=GEOMETRY_TYPES["GPKG"], promote_to_multi=False,
                                    append=append)

    def finish(self) -> None:
        raw = require_geo("pyogrio.raw")
        for path in self.paths:
            if path == self.store:
                continue
            with raw.open_arrow(self.store, batch_size=1024) as (meta, stream), warnings.catch_warnings():
                warnings.filterwarnings("ignore", NO_CRS, UserWarning)
                raw.write_arrow(stream, path, driver=_driver(path), geometry_name=meta["geometry_name"],
                                geometry_type=GEOMETRY_TYPES[_driver(path)], crs=meta["crs"])


def _table(detections: Detections, transform: Any, crs: Any):
    """The objects' features as a GeoDataFrame: id, label, box_score, mask_score, area, polygon."""
    geopandas = require_geo("geopandas")
    shapes = polygons(detections, transform) if len(detections) else []
    return geopandas.GeoDataFrame({
        "id": object_ids(detections), "label": np.array(detections.labels, dtype=object),
        "box_score": _scores(detections.box_scores, len(detections)), "mask_score": _scores(detections.mask_scores, len(detections)),
        "area": np.array([shape.area for shape in shapes], np.float64),
    }, geometry=shapes, crs=crs)


def _driver(path: Path) -> str:
    driver = VECTOR_DRIVERS.get(path.suffix.lower())
    if driver is None:
        raise InvalidOptionError(f"Vectors are written as {', '.join(VECTOR_DRIVERS)}; got {path.name}.")
    return driver


def geojson(detections: Detections, transform: Any = None, crs: Any = None) -> dict[str, Any]:
    """write_vectors' GeoJSON as a dict (a FeatureCollection naming its CRS in "crs", as GDAL writes
    it), for answers that are not files (the server's format=geojson)."""
    import json

    with tempfile.TemporaryDirectory(prefix="lang-sam-geojson-") as folder:
        path = Path(folder) / "objects.geojson"
        write_vectors(path, detections, transform, crs)
        return json.loads(path.read_text(encoding="utf-8"))


def preview(reader: TileReader, labels: str | Path, longest_side: int = PREVIEW_SIDE) -> np.ndarray:
    """(h, w, 3) uint8: the image shrunk to longest_side (reader.overview), each object's pixels
    blended half and half with its own colour (by id), read from the label GeoTIFF labels
    (write_tiled's) shrunk to the same size, nearest pixel: the object on top is the one shown."""
    rasterio = require_geo("rasterio")
    image = reader.overview(longest_side).astype(np.float32)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE), rasterio.open(labels) as dataset:
        ids = dataset.read(1, out_shape=image.shape[:2], resampling=rasterio.enums.Resampling.nearest).astype(np.int64)
    colours = np.random.default_rng(0).integers(40, 256, (max(int(ids.max()), 1), 3))
    shown = ids > 0
    image[shown] = 0.5 * image[shown] + 0.5 * colours[ids[shown] - 1]
    return image.round().astype(np.uint8)


def _compact(detections: Detections):
    """The detections' masks as a CompactMask; outputs are drawn from masks, so they are required."""
    if detections.masks is None:
        raise InvalidOptionError("Label rasters, polygons and previews are drawn from masks; these detections hold boxes only.")
    return detections.compact().masks


def _scores(scores: np.ndarray | None, count: int) -> np.ndarray:
    return np.full(count, np.nan) if scores is None else scores.astype(np.float64)
