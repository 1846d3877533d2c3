"""lang-sam's SamAutomaticMaskGenerator against segment-anything's on identical random weights.

Random weights give noisy masks with low predicted IoU and stability, so the filters are set
where such masks pass some of them; each configuration still runs every step it names (IoU and
stability filters, box NMS, crops and their NMS, small-region removal) in both implementations.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from segment_anything import SamAutomaticMaskGenerator as ReferenceGenerator

from lang_sam.errors import InvalidImageError, InvalidOptionError
from lang_sam.segmenter import SamAutomaticMaskGenerator
from lang_sam.segmenter.automatic_mask_generator import crop_boxes, point_grid, uncompressed_rle
from lang_sam.segmenter.build import build_sam_from_architecture
from tests.conftest import SMALL_ARCHITECTURE, random_sam_state_dict, reference_sam, shared_image

FIELDS = ["segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box"]


@pytest.fixture(scope="module")
def models():
    state_dict = random_sam_state_dict(SMALL_ARCHITECTURE, seed=3)
    ours = build_sam_from_architecture(SMALL_ARCHITECTURE)
    ours.load_state_dict(state_dict, strict=True)
    return ours.eval(), reference_sam(SMALL_ARCHITECTURE, state_dict)


def assert_same_records(reference: list[dict], ours: list[dict]) -> None:
    """Every one of the reference's masks matched by one of ours at IoU >= 0.99, counts within 2%,
    and the matched records' fields equal (scores to float32 precision)."""
    assert abs(len(ours) - len(reference)) <= 0.02 * len(reference), (len(ours), len(reference))
    assert len(reference) > 0, "the configuration keeps some masks"
    theirs = np.stack([r["segmentation"] for r in reference]).reshape(len(reference), -1).astype(np.float32)
    mine = np.stack([r["segmentation"] for r in ours]).reshape(len(ours), -1).astype(np.float32)
    intersection = theirs @ mine.T
    union = theirs.sum(1)[:, None] + mine.sum(1)[None] - intersection
    iou = intersection / np.maximum(union, 1)
    best = iou.argmax(axis=1)
    assert iou.max(axis=1).min() >= 0.99
    for expected, found in zip(reference, (ours[i] for i in best)):
        assert list(found) == FIELDS
        assert abs(found["area"] - expected["area"]) <= 0.001 * expected["area"] + 1
        assert np.allclose(found["bbox"], expected["bbox"], atol=1) and found["crop_box"] == expected["crop_box"]
        assert np.allclose(found["point_coords"], expected["point_coords"], atol=1e-3)
        assert found["predicted_iou"] == pytest.approx(expected["predicted_iou"], abs=1e-5)
        assert found["stability_score"] == pytest.approx(expected["stability_score"], abs=1e-3)


CONFIGURATIONS = {
    # every mask of 5 x 5 points, three per point, none suppressed
    "all masks": dict(points_per_side=5, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0),
    "iou filter, box nms": dict(points_per_side=5, pred_iou_thresh=0.001, stability_score_thresh=0.0, box_nms_thresh=0.7),
    "stability filter": dict(points_per_side=5, pred_iou_thresh=0.0, stability_score_thresh=0.02,
                             stability_score_offset=0.05, box_nms_thresh=1.0),
    "crops": dict(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0, crop_n_layers=1, box_nms_thresh=1.0,
                  crop_nms_thresh=1.0),
    "small regions": dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, min_mask_region_area=300,
                          box_nms_thresh=1.0),
}


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_the_same_masks_as_segment_anything(models, name):
    ours, reference = models
    image = np.asarray(Image.fromarray(shared_image("groceries.jpg")).resize((400, 267)))  # a real photo, at half size
    options = CONFIGURATIONS[name]
    expected = ReferenceGenerator(reference, **options).generate(image)
    found = SamAutomaticMaskGenerator(ours, **options).generate(image)
    assert_same_records(expected, found)


def test_output_modes_hold_the_same_mask(models):
    image = shared_image("groceries.jpg")[::4, ::4].copy()
    options = dict(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    binary = SamAutomaticMaskGenerator(models[0], **options).generate(image)
    coco = SamAutomaticMaskGenerator(models[0], output_mode="coco_rle", **options).generate(image)
    raw = SamAutomaticMaskGenerator(models[0], output_mode="uncompressed_rle", **options).generate(image)
    reference = ReferenceGenerator(models[1], output_mode="uncompressed_rle", **options).generate(image)
    assert len(binary) == len(coco) == len(raw) == len(reference) == 12
    for mask, compressed, uncompressed, theirs in zip(binary, coco, raw, reference):
        rle = {"size": compressed["segmentation"]["size"], "counts": compressed["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), mask["segmentation"])
        assert uncompressed["segmentation"]["size"] == theirs["segmentation"]["size"]
        assert sum(uncompressed["segmentation"]["counts"]) == image.shape[0] * image.shape[1]
        assert np.array_equal(mask_utils.decode(mask_utils.frPyObjects(uncompressed["segmentation"], *image.shape[:2])),
                              mask["segmentation"])


def test_grid_crops_and_rle_helpers_give_the_reference_values():
    from segment_anything.utils.amg import build_point_grid, generate_crop_boxes, mask_to_rle_pytorch

    assert np.allclose(point_grid(5), build_point_grid(5))
    for size, layers, ratio in (((534, 800), 1, 512 / 1500), ((1200, 480), 2, 0.3), ((7, 5), 2, 512 / 1500)):
        boxes, layer_ids = generate_crop_boxes(size, layers, ratio)
        assert [(box, layer) for box, layer in crop_boxes(*size, layers, ratio)] == list(zip(boxes, layer_ids))
    masks = torch.from_numpy(np.random.default_rng(0).random((3, 9, 7)) > 0.5)
    masks[1] = True
    masks[2] = False
    assert [uncompressed_rle(mask.numpy()) for mask in masks] == mask_to_rle_pytorch(masks)


@pytest.mark.parametrize("options, message", [
    (dict(points_per_side=0), "points_per_side must be a whole number >= 1"),
    (dict(points_per_side=None), "exactly one of points_per_side and point_grids"),
    (dict(points_per_batch=0), "points_per_batch"),
    (dict(pred_iou_thresh=1.5), "pred_iou_thresh must be between 0 and 1"),
    (dict(stability_score_thresh=-0.1), "stability_score_thresh"),
    (dict(crop_n_layers=-1), "crop_n_layers"),
    (dict(output_mode="png"), "Unknown output_mode"),
    (dict(points_per_side=None, point_grids=[point_grid(2)], crop_n_layers=1), "one grid per crop layer"),
])
def test_bad_options_are_clear_errors(models, options, message):
    with pytest.raises(InvalidOptionError, match=message):
        SamAutomaticMaskGenerator(models[0], **options)


def test_bad_images_are_clear_errors_and_tiny_images_work(models):
    generator = SamAutomaticMaskGenerator(models[0], points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                                          crop_n_layers=1)
    for image in (np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((0, 5, 3), np.uint8), "photo.jpg"):
        with pytest.raises(InvalidImageError):
            generator.generate(image)
    records = generator.generate(np.full((3, 2, 3), 200, np.uint8))  # smaller than any crop's overlap
    assert all(r["segmentation"].shape == (3, 2) for r in records)
    nothing = SamAutomaticMaskGenerator(models[0], points_per_side=2, pred_iou_thresh=1.0).generate(shared_image("groceries.jpg"))
    assert nothing == [], "a generator that finds nothing returns no records"


def test_progress_counts_every_point_batch(models):
    calls = []
    SamAutomaticMaskGenerator(models[0], points_per_side=4, points_per_batch=5, crop_n_layers=1, pred_iou_thresh=1.0).generate(
        shared_image("groceries.jpg")[::8, ::8].copy(), progress=lambda done, total: calls.append((done, total)))
    # 16 points -> 4 batches on the whole image; layer 1: 4 crops of 16 points -> 16 batches
    assert calls == [(done, 20) for done in range(1, 21)]


def test_lang_sam_everything_writes_the_generators_masks_and_a_drawing(sam_files, tmp_path, capsys):
    from lang_sam.interfaces.cli import main
    from lang_sam.segmenter import build_sam
    from tests.detector.test_grounding_dino import ASSETS

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(ASSETS / "coffee.jpg", photos / "coffee.jpg")
    (photos / "broken.jpg").write_bytes(b"not an image")
    options = ["--points-per-side", "3", "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--min-mask-region-area", "50"]
    code = main(["everything", str(photos), "--out", str(tmp_path / "out"), "--sam-checkpoint", str(sam_files[0]),
                 "--device", "cpu", *options])
    assert code == 1, "one image could not be read"
    assert "skipped" in capsys.readouterr().err
    payload = json.loads((tmp_path / "out" / "coffee.json").read_text())
    image = np.asarray(Image.open(ASSETS / "coffee.jpg").convert("RGB"))
    expected = SamAutomaticMaskGenerator(build_sam(checkpoint=sam_files[0]), points_per_side=3, pred_iou_thresh=0.0,
                                         stability_score_thresh=0.0, min_mask_region_area=50).generate(image)
    expected.sort(key=lambda r: -r["area"])
    assert payload["image"] == {"height": 400, "width": 600} and len(payload["masks"]) == len(expected) > 0
    for written, record in zip(payload["masks"], expected):
        rle = {"size": written["segmentation"]["size"], "counts": written["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), record["segmentation"])
        assert {k: written[k] for k in FIELDS[1:]} == {k: record[k] for k in FIELDS[1:]}
    drawing = np.asarray(Image.open(tmp_path / "out" / "coffee.png"))
    assert drawing.shape == image.shape and (drawing != image).any()
    assert main(["everything", str(photos), "--out", str(tmp_path / "bad"), "--points-per-side", "0"]) == 2
    assert "points_per_side must be" in capsys.readouterr().err and not (tmp_path / "bad").exists()
