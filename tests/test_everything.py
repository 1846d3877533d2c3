"""Segment-everything as Detections: the generator's Detections (SAM v1 and a transformers family,
SAM 2.1) equal its segment-anything records field by field, the boxes, labels and votes computed
here from the records; the JSON, the labels and reading old JSON back are what the records gave."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from lang_sam.everything import (
    EverythingLabeler,
    everything_json,
    name_detections,
    records_from_json,
    segment_everything,
)
from lang_sam.segmenter import SamAutomaticMaskGenerator
from tests.conftest import synthetic_image

IMAGE = synthetic_image(96, 128, seed=7)
ALL_MASKS = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}
CONFIGURATIONS = {
    "all masks": ALL_MASKS,
    "filters and nms": {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 0.7},
    "crops and small regions": {"points_per_side": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0,
                                    "crop_n_layers": 1, "crop_nms_thresh": 1.0, "min_mask_region_area": 30},
    "nothing kept": {"points_per_side": 2, "pred_iou_thresh": 1.0},
}


@pytest.fixture(scope="module", params=["sam v1", "sam2"])
def segmenter(request, tmp_path_factory):
    """A tiny random SAM v1 (Meta's format) or SAM 2.1 (saved with save_pretrained), loaded as users load them."""
    import torch

    from lang_sam.families.loading import load_segmenter
    from tests.conftest import TINY_A, TINY_SAMS, random_sam_state_dict
    from tests.families.conftest import save_tiny_segmenter

    folder = tmp_path_factory.mktemp("everything-sam")
    if request.param == "sam v1":
        checkpoint = folder / f"{TINY_A}.pth"
        torch.save(random_sam_state_dict(TINY_SAMS[TINY_A], seed=4), checkpoint)
    else:
        checkpoint = save_tiny_segmenter("sam2", folder / "tiny-sam2")
    return load_segmenter(None, checkpoint, "cpu", "float32")


def pixel_edge_box(mask: np.ndarray) -> list[int]:
    """x0, y0 of the mask's first column and row, x1, y1 one past its last; [0, 0, 0, 0] if empty."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1] if len(rows) else [0, 0, 0, 0]


def assert_detections_are_the_records(detections, records: list[dict], image_size: tuple[int, int]) -> None:
    """One object per record in its order: its mask (held compactly), the pixel-edge box of its
    mask, predicted IoU as both scores, class "object", and the record's other fields in data."""
    assert len(detections) == len(records) and detections.image_size == image_size and detections.is_compact
    masks = np.stack([r["segmentation"] for r in records]) if records else np.zeros((0, *image_size), bool)
    assert np.array_equal(detections.dense_masks(), masks)
    assert detections.xyxy.tolist() == [pixel_edge_box(mask) for mask in masks]
    iou = np.array([r["predicted_iou"] for r in records], np.float32)
    assert np.array_equal(detections.mask_scores, iou) and np.array_equal(detections.box_scores, iou)
    assert detections.classes == ("object",) and detections.labels == ["object"] * len(records)
    data = detections.data
    assert data["area"].tolist() == [r["area"] for r in records] == masks.sum(axis=(1, 2)).tolist()
    assert data["stability_score"].tolist() == [r["stability_score"] for r in records]
    assert [[point] for point in data["point_coords"].tolist()] == [r["point_coords"] for r in records]
    assert data["crop_box"].tolist() == [r["crop_box"] for r in records]


def json_of_records(records: list[dict], image_size: tuple[int, int]) -> dict:
    """everything_json's format written from the records: largest first, COCO RLE, the record's fields."""
    masks = []
    for record in sorted(records, key=lambda r: -r["area"]):
        rle = mask_utils.encode(np.asfortranarray(record["segmentation"].astype(np.uint8)))
        masks.append({"segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
                      **{k: v for k, v in record.items() if k != "segmentation"}})
    return {"image": {"height": image_size[0], "width": image_size[1]}, "masks": masks}


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_the_generators_detections_are_its_records(segmenter, name):
    generator = SamAutomaticMaskGenerator(segmenter, **CONFIGURATIONS[name])
    records = generator.generate(IMAGE)
    assert (len(records) == 0) == (name == "nothing kept")
    detections = generator.detections(IMAGE)
    assert_detections_are_the_records(detections, records, IMAGE.shape[:2])
    exported = everything_json(detections)
    assert exported == json_of_records(records, IMAGE.shape[:2])
    assert all(np.array_equal(read["segmentation"], written["segmentation"]) and read["area"] == written["area"]
               for read, written in zip(records_from_json(exported), sorted(records, key=lambda r: -r["area"]), strict=True))


def test_label_records_are_the_masks_largest_first(segmenter):
    generator = SamAutomaticMaskGenerator(segmenter, **ALL_MASKS)
    records = sorted(generator.generate(IMAGE), key=lambda r: -r["area"])
    labelled = EverythingLabeler(generator).label(IMAGE)["detections"]
    assert [d["label"] for d in labelled] == ["object"] * len(records) and len(records) == 48
    assert [d["box"] for d in labelled] == [pixel_edge_box(r["segmentation"]) for r in records]
    assert [d["score"] for d in labelled] == [round(r["predicted_iou"], 6) for r in records]
    assert [d["mask_score"] for d in labelled] == [round(r["stability_score"], 6) for r in records]
    assert [d["mask"] for d in labelled] == [m["segmentation"] for m in json_of_records(records, IMAGE.shape[:2])["masks"]]


class BandedNamer:
    """A universal model's interface (labels, semantic_map) with a known map: three equal bands of columns."""

    labels = ("sky", "road", "tree")

    def semantic_map(self, image: np.ndarray) -> np.ndarray:
        columns = np.arange(image.shape[1])
        return np.broadcast_to(columns * 3 // image.shape[1], image.shape[:2])


def test_named_detections_carry_the_class_holding_most_of_each_mask(segmenter):
    namer = BandedNamer()
    generator = SamAutomaticMaskGenerator(segmenter, **ALL_MASKS)
    records = generator.generate(IMAGE)
    named = segment_everything(IMAGE, generator, namer)
    class_map = namer.semantic_map(IMAGE)
    votes = [np.bincount(class_map[r["segmentation"]], minlength=len(namer.labels)) for r in records]
    winners = [int(np.argmax(v)) for v in votes]
    assert named.labels == [namer.labels[w] for w in winners] and named.classes == namer.labels
    assert len(set(winners)) > 1, "the masks lie in different bands"
    shares = [round(float(v[w] / max(v.sum(), 1)), 6) for v, w in zip(votes, winners)]
    # vote_labels divides in float32: rounded to 6 decimals, a share may land one step away
    assert named.data["label_share"].tolist() == pytest.approx(shares, abs=1.5e-6)
    unnamed = generator.detections(IMAGE)  # the records' own (the test above): naming changes nothing else
    assert np.array_equal(named.xyxy, unnamed.xyxy) and np.array_equal(named.dense_masks(), unnamed.dense_masks())
    assert np.array_equal(named.mask_scores, unnamed.mask_scores) and np.array_equal(named.box_scores, unnamed.box_scores)
    assert all(np.array_equal(named.data[key], unnamed.data[key]) for key in unnamed.data)
    exported = everything_json(named)["masks"]
    by_area = np.argsort([-r["area"] for r in records], kind="stable")
    assert [(m["label"], m["label_share"]) for m in exported] == [(named.labels[i], float(named.data["label_share"][i])) for i in by_area]
    assert name_detections(named[:0], IMAGE, namer).classes == named.classes, "nothing to name: left as it is"
