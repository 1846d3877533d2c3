"""``lang-sam eval``: COCO mask and box AP of LangSAM on a COCO dataset, and SAM alone on its boxes.

The metrics are pycocotools' own; this module only turns results into COCO predictions and the
summaries into numbers, overall and per class.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path
from typing import Any

import numpy as np

from lang_sam.detector.prompts import normalize_class_name
from lang_sam.errors import InvalidOptionError
from lang_sam.io.images import load_image

_REQUIRED_FIELDS = {
    "images": ("id", "file_name"),
    "annotations": ("image_id", "category_id"),
    "categories": ("id", "name"),
}


def check_coco_dataset(dataset: object, source: str = "the dataset") -> None:
    """Raise InvalidOptionError naming what is wrong unless dataset has COCO's instances layout."""
    if not isinstance(dataset, dict):
        raise InvalidOptionError(f"{source} is not a COCO instances file: its top level must be an object.")
    for key, fields in _REQUIRED_FIELDS.items():
        entries = dataset.get(key)
        if not isinstance(entries, list):
            raise InvalidOptionError(f"{source} is not a COCO instances file: {key!r} must be a list, got {type(entries).__name__}.")
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict) or any(field not in entry for field in fields):
                raise InvalidOptionError(
                    f"{source}: {key}[{position}] must be an object with {', '.join(fields)}; got {str(entry)[:80]}."
                )
    if any(not isinstance(category["name"], str) for category in dataset["categories"]):
        raise InvalidOptionError(f"{source}: every category name must be text.")
    known = {category["id"] for category in dataset["categories"]}
    unknown = sorted({str(a["category_id"]) for a in dataset["annotations"] if a["category_id"] not in known})
    if unknown:
        raise InvalidOptionError(f"{source}: annotations name categories that are not listed: {', '.join(unknown[:5])}.")


def load_ground_truth(dataset: dict[str, Any], source: str = "the dataset"):
    """A pycocotools COCO index over a dataset dict (checked first), without its progress prints."""
    from pycocotools.coco import COCO

    check_coco_dataset(dataset, source)
    ground_truth = COCO()
    ground_truth.dataset = copy.deepcopy(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth.createIndex()
    return ground_truth


def coco_metrics(ground_truth, predictions: list[dict[str, Any]], image_ids: list[int] | None = None) -> dict[str, Any]:
    """Mask ("segm") and box AP, AP50 and AP75, overall and per class name, and the precision-recall
    curve, from COCOeval.

    predictions: COCO results (image_id, category_id, segmentation RLE, score); image_ids limits
    the evaluation to those images (default: all of the ground truth's). The curve is COCOeval's
    precision at its 101 recall levels, averaged over the classes with ground truth, at IoU 0.5 and
    over IoU 0.5:0.95 (its mean is AP50, and AP); it reaches as far as the predictions' scores do,
    so predict with box_threshold=0 to see all of it.
    """
    from pycocotools.cocoeval import COCOeval

    names = {category["id"]: category["name"] for category in ground_truth.loadCats(ground_truth.getCatIds())}
    metrics: dict[str, Any] = {}
    for iou_type, key in (("segm", "mask"), ("bbox", "box")):
        if not predictions:
            metrics[key] = {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "per_class": {name: 0.0 for name in names.values()},
                            "pr_curve": precision_recall_curve(None)}
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            detections = ground_truth.loadRes(copy.deepcopy(predictions))
            evaluation = COCOeval(ground_truth, detections, iou_type)
            if image_ids is not None:
                evaluation.params.imgIds = image_ids
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        precision = evaluation.eval["precision"]  # [IoU thresholds, recall, class, area, max dets]
        per_class = {}
        for position, category_id in enumerate(evaluation.params.catIds):
            values = precision[:, :, position, 0, -1]
            values = values[values > -1]
            if values.size:  # classes without ground truth in these images have no AP
                per_class[names[category_id]] = float(values.mean())
        stats = evaluation.stats
        metrics[key] = {"AP": float(stats[0]), "AP50": float(stats[1]), "AP75": float(stats[2]), "per_class": per_class,
                        "pr_curve": precision_recall_curve(precision[:, :, :, 0, -1])}
    return metrics


RECALL_LEVELS = np.linspace(0.0, 1.0, 101)  # COCOeval's recThrs


def precision_recall_curve(precision: np.ndarray | None) -> dict[str, list[float]]:
    """precision: COCOeval's [IoU threshold, recall level, class] for all areas and 100 detections,
    -1 where a class has no ground truth (None: no predictions). Per recall level, the precision
    averaged over the classes with ground truth, at IoU 0.5 and over all ten IoU thresholds."""
    if precision is None:
        zeros = [0.0] * len(RECALL_LEVELS)
        return {"recall": RECALL_LEVELS.round(2).tolist(), "precision_iou50": zeros, "precision_iou50_95": zeros}
    counted = precision > -1
    with np.errstate(invalid="ignore"):
        at_50 = np.where(counted[0], precision[0], 0).sum(axis=1) / counted[0].sum(axis=1)
        over_all = np.where(counted, precision, 0).sum(axis=(0, 2)) / counted.sum(axis=(0, 2))
    return {"recall": RECALL_LEVELS.round(2).tolist(), "precision_iou50": np.nan_to_num(at_50).round(6).tolist(),
            "precision_iou50_95": np.nan_to_num(over_all).round(6).tolist()}


def result_to_predictions(result, image_id: int, category_ids: dict[str, int]) -> list[dict[str, Any]]:
    """A LangSAMResult as COCO predictions for image_id, labels mapped to category ids by name; the
    box is the detector's (box AP measures the detector, mask AP the masks)."""
    return [
        {
            "image_id": image_id,
            "category_id": category_ids[label],
            "segmentation": rle,
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            "score": float(score),
        }
        for label, score, rle, (x0, y0, x1, y1) in zip(result.phrases, result.logits, result.to_coco_rle(), result.boxes)
    ]


def evaluate_pipeline(model, ground_truth, images_dir: Path, image_ids: list[int], **thresholds) -> dict[str, Any]:
    """Prompt LangSAM with every category name on each image; COCO metrics of what it finds."""
    categories = ground_truth.loadCats(ground_truth.getCatIds())
    category_ids: dict[str, int] = {}
    for category in categories:  # names as the detector normalizes them; the first of equal names wins
        category_ids.setdefault(normalize_class_name(category["name"]), category["id"])
    classes = [name for name in category_ids if name]
    predictions = []
    for image_id in image_ids:
        info = ground_truth.loadImgs(image_id)[0]
        result = model.predict(load_image(images_dir / info["file_name"]), classes=classes, **thresholds)
        predictions.extend(result_to_predictions(result, image_id, category_ids))
    return {"images": len(image_ids), "predictions": len(predictions), **coco_metrics(ground_truth, predictions, image_ids)}


def mask_iou(first: np.ndarray, second: np.ndarray) -> float:
    union = np.logical_or(first, second).sum()
    return float(np.logical_and(first, second).sum() / union) if union else 1.0


def evaluate_sam_only(segmenter, ground_truth, images_dir: Path, image_ids: list[int]) -> dict[str, Any]:
    """A promptable segmenter (lang_sam.families.base.Segmenter: SAM v1, SAM 2.1, SAM-HQ) prompted
    with each ground-truth box (crowd regions left out): mean mask IoU, overall and per class, so
    that the segmenter's quality is measured apart from the detector's."""
    import torch

    names = {category["id"]: category["name"] for category in ground_truth.loadCats(ground_truth.getCatIds())}
    ious: dict[str, list[float]] = {}
    for image_id in image_ids:
        info = ground_truth.loadImgs(image_id)[0]
        annotations = [a for a in ground_truth.loadAnns(ground_truth.getAnnIds(imgIds=image_id)) if not a.get("iscrowd")]
        if not annotations:
            continue
        embedding = segmenter.embed(segmenter.preprocess(load_image(images_dir / info["file_name"])))
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annotations)], dtype=torch.float32)
        masks = segmenter.decode(embedding, boxes=boxes).masks
        for annotation, mask in zip(annotations, masks[:, 0].numpy()):
            truth = ground_truth.annToMask(annotation).astype(bool)
            ious.setdefault(names[annotation["category_id"]], []).append(mask_iou(mask, truth))
    every = [value for values in ious.values() for value in values]
    return {
        "images": len(image_ids),
        "instances": len(every),
        "mean_iou": float(np.mean(every)) if every else 0.0,
        "per_class": {name: float(np.mean(values)) for name, values in sorted(ious.items())},
    }


def format_table(metrics: dict[str, Any]) -> str:
    """The metrics as a plain-text table: overall first, then one row per class."""
    if "mean_iou" in metrics:
        rows = [("all", metrics["mean_iou"])] + list(metrics["per_class"].items())
        return "class                 mask IoU\n" + "\n".join(f"{name[:20]:20} {value:9.3f}" for name, value in rows)
    mask, box = metrics["mask"], metrics["box"]
    lines = ["class                 mask AP   AP50   AP75    box AP   AP50   AP75",
             f"{'all':20} {mask['AP']:8.3f} {mask['AP50']:6.3f} {mask['AP75']:6.3f} {box['AP']:9.3f} {box['AP50']:6.3f} {box['AP75']:6.3f}"]
    for name, value in mask["per_class"].items():
        lines.append(f"{name[:20]:20} {value:8.3f} {'':13} {box['per_class'].get(name, 0.0):9.3f}")
    return "\n".join(lines)
