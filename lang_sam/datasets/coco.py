"""COCO instance-segmentation files from LangSAM results, and an Ultralytics YOLO segmentation dataset from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lang_sam.results import decode_rle

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
    """YOLO segmentation label lines, written by supervision: a line per connected part of each mask
    (class index, then its outline as x y pairs in [0, 1], holes joined to it by a zero-width seam),
    no point dropped. Parts of a pixel or two have no outline and are left out; a mask with no
    outline at all is written as its box's four corners (Ultralytics refuses files that mix box
    and polygon lines); a part whose holes supervision cannot join to its outline is written with
    its holes filled."""
    shape = (record["image"]["height"], record["image"]["width"])
    lines = []
    for detection in record["detections"]:
        mask = decode_rle(detection["mask"])
        lines += _yolo_mask_lines(mask, np.array(detection["box"], np.float32), classes.index(detection["label"]), shape)
    return lines


def _yolo_mask_lines(mask: np.ndarray, box: np.ndarray, class_id: int, shape: tuple[int, int]) -> list[str]:
    import cv2
    import supervision as sv
    from scipy.ndimage import binary_fill_holes
    from supervision.dataset.formats.yolo import detections_to_yolo_annotations, object_to_yolo

    def lines(part: np.ndarray) -> list[str]:
        if not sv.mask_to_polygons(part):
            return []
        found = sv.Detections(sv.mask_to_xyxy(part[None]).astype(np.float32), part[None], class_id=np.array([class_id]))
        return detections_to_yolo_annotations(found, shape, approximation_percentage=0.0)

    try:
        written = lines(mask)
    except ValueError:  # supervision found no seam for a hole: retry part by part, filling only that part's holes
        count, parts = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        written = []
        for index in range(1, count):
            part = parts == index
            try:
                written += lines(part)
            except ValueError:
                written += lines(binary_fill_holes(part))
    if not written:
        x0, y0, x1, y1 = box
        written = [object_to_yolo(box, class_id, shape, polygon=np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))]
    return written


def yolo_dataset_yaml(classes: list[str], val_fraction: float = 0.1) -> str:
    """dataset.yaml for Ultralytics: train.txt, val.txt and the class names. It names no path, so
    Ultralytics reads the lists next to it wherever the folder is moved."""
    names = "".join(f"  {index}: {json.dumps(name)}\n" for index, name in enumerate(classes))
    return f"# lang-sam label: {1 - val_fraction:.0%} of the images to train, {val_fraction:.0%} to validate\n" \
           f"train: train.txt\nval: val.txt\nnames:\n{names}"


def train_val_split(file_names: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """A train / val split that does not change when the run resumes: every k-th name (sorted) goes
    to val, k = round(1 / val_fraction); at least one image validates, and with a single image
    it is in both lists (Ultralytics needs both). YOLO datasets and fine-tuning split with it."""
    names = sorted(file_names)
    if not names:
        return [], []
    step = max(1, round(1 / val_fraction)) if val_fraction > 0 else len(names) + 1
    val = [name for index, name in enumerate(names) if index % step == step - 1] or names[-1:]
    train = [name for name in names if name not in set(val)] or val
    return train, val


def yolo_label_path(labels_dir: Path, file_name: str) -> Path:
    return labels_dir / Path(file_name).with_suffix(".txt")
