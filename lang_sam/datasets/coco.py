"""COCO instance-segmentation files from LangSAM results, and YOLO segmentation labels from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# One labelled image as the labeler commits it: the file name (relative to the images folder) and
# LangSAMResult.to_json()'s image size and detections.
ImageRecord = dict[str, Any]


def coco_dataset(records: list[ImageRecord], classes: list[str]) -> dict[str, Any]:
    """A COCO instance-segmentation dataset: images by file name, categories in class order, one
    annotation per detection with its RLE mask, area, xywh box, score and mask score."""
    from pycocotools import mask as mask_utils

    category_ids = {name: index + 1 for index, name in enumerate(classes)}
    images, annotations = [], []
    for image_id, record in enumerate(sorted(records, key=lambda r: r["file_name"]), start=1):
        images.append({"id": image_id, "file_name": record["file_name"], **record["image"]})
        for detection in record["detections"]:
            x0, y0, x1, y1 = detection["box"]
            rle = {"size": detection["mask"]["size"], "counts": detection["mask"]["counts"]}
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_ids[detection["label"]],
                "segmentation": rle,
                "area": float(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")})),
                "bbox": [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)],
                "iscrowd": 0,
                "score": detection["score"],
                "mask_score": detection["mask_score"],
            })
    return {
        "info": {"description": "Labelled by lang-sam (Grounding DINO + SAM)"},
        "images": images,
        "categories": [{"id": category_id, "name": name} for name, category_id in category_ids.items()],
        "annotations": annotations,
    }


def yolo_segmentation_lines(record: ImageRecord, classes: list[str]) -> list[str]:
    """YOLO segmentation label lines: class index, then the outline of the mask's largest part as
    x y pairs normalised to [0, 1]."""
    import cv2
    from pycocotools import mask as mask_utils

    height, width = record["image"]["height"], record["image"]["width"]
    lines = []
    for detection in record["detections"]:
        rle = {"size": detection["mask"]["size"], "counts": detection["mask"]["counts"].encode("ascii")}
        mask = mask_utils.decode(rle).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            continue
        outline = max(contours, key=cv2.contourArea).reshape(-1, 2)
        if len(outline) < 3:
            continue
        points = " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in outline)
        lines.append(f"{classes.index(detection['label'])} {points}")
    return lines


def yolo_label_path(labels_dir: Path, file_name: str) -> Path:
    return labels_dir / Path(file_name).with_suffix(".txt")
