"""Between Label Studio's result JSON and lang-sam's types: Detections out as BrushLabels (Label
Studio's brush RLE, written by label-studio-sdk), PolygonLabels and RectangleLabels regions in
percent of the image; the annotator's KeyPointLabels and RectangleLabels regions in as clicks and
boxes in pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lang_sam.errors import InvalidPromptError
from lang_sam.interfaces.label_studio.config import Control, is_negative
from lang_sam.vocabulary import Detections


def regions(detections: Detections, controls: Sequence[Control], labels: Sequence[str], scores: np.ndarray) -> list[dict]:
    """Label Studio results for each detection in each control whose labels hold its label.

    labels: (N,) the project label of each detection; scores: (N,) the score of each."""
    height, width = detections.image_size
    masks = detections.dense_masks() if detections.masks is not None else None
    found = []
    for index in range(len(detections)):
        label = labels[index]
        for control in controls:
            if label not in control.labels:
                continue
            value = _value(control.tag, detections.xyxy[index], None if masks is None else masks[index], width, height)
            if value is None:  # a polygon of an empty mask
                continue
            found.append({
                "id": f"{control.name}-{index}", "from_name": control.name, "to_name": control.to_name,
                "type": control.result_type, "original_width": width, "original_height": height, "image_rotation": 0,
                "value": {**value, control.result_type: [label]}, "score": float(scores[index]),
            })
    return found


def prediction(found: list[dict], model_version: str) -> dict:
    """One Label Studio prediction of the regions: their mean score, and the model version."""
    score = float(np.mean([region["score"] for region in found])) if found else 0.0
    return {"result": found, "score": score, "model_version": model_version}


def _value(tag: str, box: np.ndarray, mask: np.ndarray | None, width: int, height: int) -> dict | None:
    if tag == "BrushLabels":
        from label_studio_sdk.converter import brush

        return {"format": "rle", "rle": brush.mask2rle(mask.astype(np.uint8) * 255)}
    if tag == "PolygonLabels":
        outline = _outline(mask)
        if outline is None:
            return None
        return {"points": (outline / [width, height] * 100).tolist(), "closed": True}
    x0, y0, x1, y1 = (float(v) for v in box)
    return {"x": x0 / width * 100, "y": y0 / height * 100, "width": (x1 - x0) / width * 100,
            "height": (y1 - y0) / height * 100, "rotation": 0}


def _outline(mask: np.ndarray) -> np.ndarray | None:
    """(K, 2) pixel xy of the mask's largest part's outline (a Label Studio polygon is one outline), or None."""
    import cv2
    import supervision as sv

    polygons = sv.mask_to_polygons(mask.astype(bool))
    if not polygons:
        return None
    return max(polygons, key=lambda polygon: abs(cv2.contourArea(polygon.astype(np.float32)))).astype(np.float64)


@dataclass(frozen=True)
class Clicks:
    """The annotator's prompts of one interactive request, in pixels: points (N, 2) xy with labels
    (N,) 1 positive, 0 negative, or None; boxes (M, 4) xyxy, or None, with box_labels: the labels
    chosen on each box; label: the last project label chosen (not the counter-example label)."""

    points: np.ndarray | None
    point_labels: np.ndarray | None
    boxes: np.ndarray | None
    label: str | None
    box_labels: tuple[tuple[str, ...], ...] = ()

    @property
    def negative_boxes(self) -> np.ndarray:
        """(M,) bool: which boxes carry the counter-example label ("Negative")."""
        return np.array([any(is_negative(label) for label in labels) for labels in self.box_labels], bool)


def read_context(context: dict, prompt_controls: frozenset[str], image_size: tuple[int, int]) -> Clicks:
    """The clicks and boxes of Label Studio's interactive context (its ``result``: KeyPointLabels
    regions with ``is_positive``, RectangleLabels regions, x/y/width/height in percent) on the
    controls named prompt_controls."""
    height, width = image_size
    points, labels, boxes, box_labels, label = [], [], [], [], None
    for item in context.get("result") or []:
        if not isinstance(item, dict) or item.get("from_name") not in prompt_controls:
            continue
        value = item.get("value") or {}
        chosen = [str(name) for name in value.get(item.get("type")) or []]
        try:
            x, y = float(value["x"]) / 100 * width, float(value["y"]) / 100 * height
            if item.get("type") == "keypointlabels":
                points.append((x, y))
                labels.append(0 if item.get("is_positive") is False else 1)
            else:
                boxes.append((x, y, x + float(value["width"]) / 100 * width, y + float(value["height"]) / 100 * height))
                box_labels.append(tuple(chosen))
        except (KeyError, TypeError, ValueError):
            raise InvalidPromptError(f"A {item.get('type')} region of the request has no usable x, y (width, height): {value}.") from None
        label = next((name for name in chosen if not is_negative(name)), label)
    if not points and not boxes:
        raise InvalidPromptError("The interactive request holds no KeyPointLabels click and no RectangleLabels box on this project's controls.")
    return Clicks(np.array(points, np.float32) if points else None, np.array(labels, np.int64) if points else None,
                  np.array(boxes, np.float32) if boxes else None, label, tuple(box_labels))
