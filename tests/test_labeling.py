"""The labeling engine's parts on the assets' photos: images prepared ahead, chunks batched by size."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from lang_sam import InvalidImageError
from lang_sam.datasets.labeling import LabelJob, LabelStats, label_chunk, prepared_ahead
from lang_sam.pipeline import LangSAM, PreparedImage
from tests.test_grounding_dino import ASSETS


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
    assert stats.preparing_seconds > 0 and stats.waiting_seconds >= 0


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
