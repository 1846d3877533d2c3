"""The labeling engine's parts on the assets' photos: images prepared ahead, chunks batched by size."""

from __future__ import annotations

import shutil
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

from lang_sam import InvalidImageError
from lang_sam.datasets.labeling import LabelJob, LabelStats, label_chunk, prepared_ahead
from lang_sam.pipeline import LangSAM, PreparedImage
from tests.detector.test_grounding_dino import ASSETS


@pytest.fixture(scope="module")
def model(sam_files, tiny_detector_dir):
    return LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two photos of one size around one of another size, then a file that is no image."""
    folder = tmp_path_factory.mktemp("images")
    for name, source in (("a.jpg", "coffee.jpg"), ("b.jpg", "astronaut.jpg"), ("c.jpg", "coffee.jpg")):
        shutil.copy(ASSETS / source, folder / name)
    (folder / "d.jpg").write_bytes(b"not a jpeg")
    return folder, ("a.jpg", "b.jpg", "c.jpg", "d.jpg")


def test_prepared_ahead_keeps_the_order_and_passes_errors_on(model, images):
    folder, names = images
    stats = LabelStats()
    with ThreadPoolExecutor(max_workers=2) as pool:
        prepared = list(prepared_ahead(pool, model, str(folder), names, 2, stats))
    assert [p.original_size for p in prepared[:3]] == [(400, 600), (512, 512), (400, 600)]
    assert all(isinstance(p, PreparedImage) for p in prepared[:3])
    assert isinstance(prepared[3], InvalidImageError) and "not in an image format" in str(prepared[3])
    assert stats.preparing_seconds > 0


class SteppedClock:
    """perf_counter for the labeling module: each image prepared advances it by `step` seconds."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def perf_counter(self) -> float:
        return self.now


class LazyPool:
    """An executor that runs nothing ahead: a job runs when its result is asked for, so the caller
    waits for the whole of every preparation."""

    def submit(self, function, *args):
        future = Future()
        future.result = lambda timeout=None: function(*args)
        return future


class EagerPool:
    """An executor that runs every job at once, when submitted: the caller never waits."""

    def submit(self, function, *args):
        future = Future()
        future.set_result(function(*args))
        return future


@pytest.mark.parametrize(("pool", "waited"), [(LazyPool(), 3 * 2.5), (EagerPool(), 0.0)])
def test_waiting_and_preparing_time_are_counted_apart(pool, waited, monkeypatch):
    import lang_sam.datasets.labeling as labeling

    clock = SteppedClock(2.5)
    monkeypatch.setattr(labeling, "time", clock)
    monkeypatch.setattr(labeling, "read_image", lambda root, name: name)

    class SteppingModel:
        def prepare(self, image):
            clock.now += clock.step
            return image

    stats = LabelStats()
    assert list(prepared_ahead(pool, SteppingModel(), "root", ["a", "b", "c"], 2, stats)) == ["a", "b", "c"]
    assert stats.preparing_seconds == 3 * 2.5 and stats.waiting_seconds == waited


def test_a_chunk_batches_images_of_equal_size_and_keeps_its_order(model, images, tmp_path, monkeypatch):
    folder, names = images
    with ThreadPoolExecutor(max_workers=2) as pool:
        prepared = list(prepared_ahead(pool, model, str(folder), names, 4, LabelStats()))
    batches = []
    forward = model.detector.model.forward
    monkeypatch.setattr(model.detector.model, "forward", lambda **inputs: batches.append(len(inputs["pixel_values"])) or forward(**inputs))
    chunks = {}
    for batch_size in (2, 1):
        job = LabelJob(str(folder), names, ("cup", "person"), tmp_path, batch_size=batch_size, box_threshold=0.0,
                       text_threshold=0.0, max_detections=3)
        chunks[batch_size] = label_chunk(model, job, names, prepared)
    assert batches == [2, 1, 1, 1, 1], "a batch of 2 holds the two coffee photos, not the first two photos; batch size 1 runs them apart"
    assert [r["file_name"] for r in chunks[2]["records"]] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [f["file_name"] for f in chunks[2]["failed"]] == ["d.jpg"]
    for together, apart in zip(chunks[2]["records"], chunks[1]["records"]):
        assert [d["label"] for d in together["detections"]] == [d["label"] for d in apart["detections"]]
        np.testing.assert_allclose([d["box"] for d in together["detections"]], [d["box"] for d in apart["detections"]], atol=0.01)


def test_yolo_lines_are_all_polygons_and_an_outline_less_mask_keeps_its_box():
    """Ultralytics refuses a label file that mixes box and polygon lines: a mask with no outline
    (empty, or a single pixel) is written as its box's corners, a two-part mask as two lines."""
    from pycocotools import mask as mask_utils

    from lang_sam.datasets.coco import yolo_segmentation_lines

    def detection(mask: np.ndarray, box: list[float]) -> dict:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"label": "b", "box": box, "mask": {"size": rle["size"], "counts": rle["counts"].decode()}}

    two_parts = np.zeros((40, 80), bool)
    two_parts[5:15, 5:25] = True
    two_parts[20:35, 50:70] = True
    one_pixel = np.zeros((40, 80), bool)
    one_pixel[10, 10] = True
    record = {"image": {"height": 40, "width": 80},
              "detections": [detection(two_parts, [5, 5, 70, 35]), detection(one_pixel, [8, 4, 16, 20])]}
    lines = [[float(v) for v in line.split()] for line in yolo_segmentation_lines(record, ["a", "b"])]
    assert [line[0] for line in lines] == [1, 1, 1]
    outlines = sorted(np.array(line[1:]).reshape(-1, 2).tolist() for line in lines[:2])
    assert [min(p[0] for p in o) * 80 for o in outlines] == [5, 50] and [max(p[1] for p in o) * 40 for o in outlines] == [14, 34]
    assert np.allclose(np.array(lines[2][1:]).reshape(-1, 2) * [80, 40], [[8, 4], [16, 4], [16, 20], [8, 20]])


def test_the_train_val_split_is_stable_and_never_leaves_a_list_empty():
    from lang_sam.datasets.coco import train_val_split

    names = [f"{index:02d}.jpg" for index in range(25)]
    train, val = train_val_split(list(reversed(names)), 0.1)
    assert val == ["09.jpg", "19.jpg"] and train == [n for n in names if n not in val]
    assert train_val_split(["a.jpg"], 0.1) == (["a.jpg"], ["a.jpg"])
    assert train_val_split(["a.jpg", "b.jpg"], 0.1) == (["a.jpg"], ["b.jpg"])
    assert train_val_split(names, 0.0)[1] == ["24.jpg"], "a val list Ultralytics can open, even at 0"
