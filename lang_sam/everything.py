"""Segment-everything mode: the automatic mask generator's records drawn and exported.

The generator itself is segment-anything's, in ``lang_sam.segmenter.automatic_mask_generator``;
this module turns its records (with binary masks) into what users keep: a drawing where each
mask has its own colour, and JSON with COCO RLE masks and every record field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

RECORD_FIELDS = ("area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box")


def everything_json(records: list[dict[str, Any]], image_size: tuple[int, int]) -> dict[str, Any]:
    """Image size, then per mask (largest first, as drawn): its COCO RLE and the record's fields."""
    from pycocotools import mask as mask_utils

    height, width = image_size
    masks = []
    for record in sorted(records, key=lambda r: -r["area"]):
        rle = mask_utils.encode(np.asfortranarray(record["segmentation"].astype(np.uint8)))
        masks.append({"segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
                      **{name: record[name] for name in RECORD_FIELDS}})
    return {"image": {"height": height, "width": width}, "masks": masks}


def draw_everything(image: np.ndarray, records: list[dict[str, Any]]) -> np.ndarray:
    """(H, W, 3) uint8 drawing: every mask filled in its own colour, largest first so that the
    small ones stay visible, with its outline. The input is never changed."""
    import supervision as sv

    scene = Image.fromarray(image.copy())
    if not records:
        return np.asarray(scene)
    ordered = sorted(records, key=lambda r: -r["area"])
    masks = np.stack([r["segmentation"] for r in ordered])
    detections = sv.Detections(xyxy=sv.mask_to_xyxy(masks).astype(np.float32), mask=masks,
                               class_id=np.arange(len(ordered)))
    scene = sv.MaskAnnotator(opacity=0.5, color_lookup=sv.ColorLookup.INDEX).annotate(scene, detections)
    scene = sv.PolygonAnnotator(thickness=1, color_lookup=sv.ColorLookup.INDEX).annotate(scene, detections)
    return np.asarray(scene)
