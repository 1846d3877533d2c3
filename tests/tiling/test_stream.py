"""Streaming tiled runs (issue 30's bounded memory): objects come out as soon as no tile still to
run can join them, joined as the whole-image merge joins them; the writers take the chunks as they
come and write what the whole-image writers write; a run stopped midway leaves no file."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest

from lang_sam.errors import InvalidImageError
from lang_sam.pipeline import LangSAM
from lang_sam.tiling import OBJECT_ID_KEY, ArrayReader, TileMerger, merge_tiles, segment_tiles, stream_tiles, tile_windows
from lang_sam.tiling.merge import TileDetections, to_image
from lang_sam.tiling.outputs import write_label_raster, write_tiled, write_vectors
from lang_sam.vocabulary import Detections
from tests.conftest import synthetic_image

rasterio = pytest.importorskip("rasterio")
geopandas = pytest.importorskip("geopandas")

SIZE = (600, 280)  # five tile rows of two tiles (tile 160, overlap 40: rows start at 0, 120, 240, 360, 440)
TILE, OVERLAP = 160, 40
BOXES = np.array([[10, 10, 100, 90], [180, 20, 270, 110], [20, 250, 140, 390], [150, 480, 270, 590]], np.float32)


class RecordingReader(ArrayReader):
    """An ArrayReader noting the windows read; raising fails the read of window number raise_at."""

    def __init__(self, image: np.ndarray, raise_at: int | None = None, error: type[BaseException] = InvalidImageError) -> None:
        super().__init__(image)
        self.windows, self.raise_at, self.error = [], raise_at, error

    def read(self, window):
        if len(self.windows) == self.raise_at:
            raise self.error(f"window {window.xyxy} cannot be read")
        self.windows.append(window)
        return super().read(window)


@pytest.fixture(scope="module")
def model(sam_files, tiny_detector_dir):
    return LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype="float32")


def ellipse(centre_x: float, centre_y: float, radius_x: float, radius_y: float) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE[0], :SIZE[1]]
    return ((xx - centre_x) / radius_x) ** 2 + ((yy - centre_y) / radius_y) ** 2 <= 1


def seen_through_tiles(objects: list[np.ndarray]) -> list[TileDetections]:
    """Each tile's Detections of the objects ("car" masks) as a perfect segmenter sees them through
    its window: the part of each mask inside it, box of that part."""
    tiles = []
    for window in tile_windows(*SIZE, TILE, OVERLAP):
        crops = [mask[window.top:window.top + window.height, window.left:window.left + window.width] for mask in objects]
        crops = np.array([crop for crop in crops if crop.any()], bool).reshape(-1, window.height, window.width)
        boxes = [[np.flatnonzero(c.any(0))[0], np.flatnonzero(c.any(1))[0], np.flatnonzero(c.any(0))[-1] + 1,
                  np.flatnonzero(c.any(1))[-1] + 1] for c in crops]
        found = Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4), image_size=(window.height, window.width), masks=crops,
                           box_scores=[0.9] * len(crops), mask_scores=[0.8] * len(crops), class_ids=[0] * len(crops), classes=("car",))
        tiles.append(TileDetections(window, to_image(found, window, SIZE, ["car"])))
    return tiles


def test_an_object_spanning_every_tile_row_is_joined_while_the_others_come_out_row_by_row():
    river = ellipse(140, 300, 30, 295)  # from the first tile row to the last, across the column border
    ponds = [ellipse(40, 60, 25, 25), ellipse(240, 190, 25, 25), ellipse(40, 520, 25, 25)]  # each inside one tile
    tiles = seen_through_tiles([river, *ponds])
    merger = TileMerger([tile.window for tile in tiles], SIZE)
    chunks = [merger.add(tile.detections) for tile in tiles]
    finished_after = {tuple(np.flatnonzero(chunk.dense_masks().any(axis=0).any(axis=1))[[0, -1]]): index
                      for index, chunk in enumerate(chunks) for _ in range(len(chunk))}
    assert len(tiles) == 10 and sum(len(chunk) for chunk in chunks) == 4
    assert [len(chunk) for chunk in chunks[:2]] == [1, 0], "the first pond is out after its own tile; the river is held"
    assert finished_after[(35, 85)] == 0 and finished_after[(165, 215)] == 3 and finished_after[(495, 545)] == 8
    assert len(chunks[-1]) == 1 and np.array_equal(chunks[-1].dense_masks()[0], river), "the river: one object, its whole mask"
    assert np.concatenate([chunk.data[OBJECT_ID_KEY] for chunk in chunks]).tolist() == [1, 2, 3, 4]
    gathered = merge_tiles(tiles, SIZE)
    assert np.array_equal(gathered.dense_masks(), np.concatenate([chunk.dense_masks() for chunk in chunks]))


def test_the_stream_gives_objects_while_tiles_are_still_to_run_and_gathers_into_the_in_memory_result(model):
    image = synthetic_image(*SIZE, seed=8)
    reader = RecordingReader(image)
    read_before_each = []
    chunks = []
    for chunk in stream_tiles(model, reader, None, TILE, OVERLAP, boxes=BOXES, label="roof"):
        read_before_each.append(len(reader.windows))
        chunks.append(chunk)
    total = len(tile_windows(*SIZE, TILE, OVERLAP))
    early = [read for read, chunk in zip(read_before_each, chunks) if len(chunk) and read < total]
    assert read_before_each == list(range(1, total + 1)), "a chunk after every tile, before the next is read"
    assert len(early) >= 2, f"objects finished while tiles were still to run: after reading {early} of {total} windows"
    in_memory = segment_tiles(model, ArrayReader(image), None, TILE, OVERLAP, boxes=BOXES, label="roof")
    assert len(in_memory) == 4 and in_memory.data[OBJECT_ID_KEY].tolist() == [1, 2, 3, 4]
    assert np.concatenate([chunk.data[OBJECT_ID_KEY] for chunk in chunks]).tolist() == [1, 2, 3, 4]
    streamed = np.concatenate([chunk.dense_masks() for chunk in chunks])
    assert np.array_equal(streamed, in_memory.dense_masks()) and (streamed.sum(axis=(1, 2)) > 0).all()
    assert np.array_equal(np.concatenate([chunk.xyxy for chunk in chunks]), in_memory.xyxy)
    assert np.array_equal(np.concatenate([chunk.mask_scores for chunk in chunks]), in_memory.mask_scores)


def overlapping_chunks() -> list[Detections]:
    """Three chunks of objects that overlap each other (also across chunks), ids 1..7, two of one size."""
    masks = [ellipse(60, 60, 50, 40), ellipse(80, 70, 20, 20), ellipse(200, 300, 70, 200), ellipse(200, 300, 20, 20),
             ellipse(150, 500, 40, 40), ellipse(160, 500, 40, 40), ellipse(100, 100, 30, 30)]
    chunks, start = [], 0
    for count in (2, 0, 5):
        part = np.array(masks[start:start + count], bool).reshape(-1, *SIZE)
        boxes = [[np.flatnonzero(m.any(0))[0], np.flatnonzero(m.any(1))[0], np.flatnonzero(m.any(0))[-1] + 1,
                  np.flatnonzero(m.any(1))[-1] + 1] for m in part]
        chunks.append(Detections(
            xyxy=np.array(boxes, np.float32).reshape(-1, 4), image_size=SIZE, masks=part, box_scores=np.linspace(0.5, 0.9, count),
            mask_scores=np.linspace(0.4, 0.8, count), class_ids=np.arange(count) % 2, classes=("tree", "roof"),
            data={OBJECT_ID_KEY: np.arange(start + 1, start + count + 1)}).compact())
        start += count
    return chunks


def test_the_writers_take_chunks_and_write_what_the_whole_image_writers_write(tmp_path):
    chunks = overlapping_chunks()
    whole = Detections(xyxy=np.concatenate([c.xyxy for c in chunks]), image_size=SIZE,
                       masks=np.concatenate([c.dense_masks() for c in chunks]), box_scores=np.concatenate([c.box_scores for c in chunks]),
                       mask_scores=np.concatenate([c.mask_scores for c in chunks]), class_ids=np.concatenate([c.class_ids for c in chunks]),
                       classes=("tree", "roof"), data={OBJECT_ID_KEY: np.arange(1, 8)})
    (tmp_path / "chunks").mkdir()
    (tmp_path / "whole").mkdir()
    transform, crs = rasterio.transform.from_origin(500000.0, 4100000.0, 0.5, 0.5), "EPSG:32633"
    vectors = ["objects.gpkg", "objects.geojson", "objects.shp"]
    written = write_tiled(iter(chunks), SIZE, transform, crs, labels=tmp_path / "chunks" / "labels.tif",
                          vectors=[tmp_path / "chunks" / name for name in vectors])
    write_label_raster(tmp_path / "whole" / "labels.tif", whole.compact(), transform, crs)
    for name in vectors:
        write_vectors(tmp_path / "whole" / name, whole, transform, crs)
    assert written == 7
    with rasterio.open(tmp_path / "chunks" / "labels.tif") as dataset:
        labels = dataset.read(1)
    expected = np.zeros(SIZE, np.uint32)  # the rule: largest painted first, so the smaller is on top (of two of one size, the later)
    masks = whole.dense_masks()
    for index in np.argsort(-masks.sum(axis=(1, 2)), kind="stable"):
        expected[masks[index]] = index + 1
    assert np.array_equal(labels, expected) and set(np.unique(labels)) == set(range(8))
    made = sorted(path.name for path in (tmp_path / "chunks").iterdir())
    assert made == sorted(path.name for path in (tmp_path / "whole").iterdir())
    for name in made:
        if not name.endswith(".gpkg"):  # a GeoPackage holds its writing time
            assert filecmp.cmp(tmp_path / "chunks" / name, tmp_path / "whole" / name, shallow=False), name
    streamed, at_once = (geopandas.read_file(tmp_path / folder / "objects.gpkg") for folder in ("chunks", "whole"))
    assert streamed.drop(columns="geometry").equals(at_once.drop(columns="geometry"))
    assert all(a.equals(b) for a, b in zip(streamed.geometry, at_once.geometry)) and streamed["id"].tolist() == list(range(1, 8))


@pytest.mark.parametrize("error", [InvalidImageError, KeyboardInterrupt])
def test_a_run_stopped_midway_leaves_no_file(model, tmp_path, error):
    reader = RecordingReader(synthetic_image(*SIZE, seed=9), raise_at=7, error=error)
    stream = stream_tiles(model, reader, None, TILE, OVERLAP, boxes=BOXES, label="roof")
    with pytest.raises(error, match="cannot be read"):
        write_tiled(stream, SIZE, labels=tmp_path / "labels.tif", vectors=[tmp_path / "objects.gpkg", tmp_path / "objects.shp"])
    assert len(reader.windows) == 7
    assert list(tmp_path.iterdir()) == [], "no output, half-written or temporary"
