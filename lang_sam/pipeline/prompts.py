"""The clicks and boxes a user gives for one image, checked, and the objects they name."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lang_sam.errors import InvalidPromptError
from lang_sam.vocabulary import Detections, ObjectPrompt
from lang_sam.vocabulary.prompts import check_inside, finite_array, pixel_boxes


@dataclass(frozen=True)
class UserPrompts:
    """Checked prompts of one image, in image pixels: boxes (M, 4); points (N, 2) with labels (N,)
    or None; mask_input (256, 256) or None."""

    boxes: np.ndarray
    points: np.ndarray | None
    labels: np.ndarray | None
    mask_input: np.ndarray | None


def check_user_prompts(points, point_labels, boxes, mask_input, image_size: tuple[int, int]) -> UserPrompts:
    """UserPrompts, or the InvalidPromptError that names what is wrong."""
    checked_boxes = np.zeros((0, 4), np.float32)
    if boxes is not None:
        checked_boxes = pixel_boxes(boxes, "boxes")
        check_inside(checked_boxes.reshape(-1, 2), image_size, "box corner")
    checked_points = checked_labels = None
    if points is not None:
        checked_points = finite_array(points, "points")
        if checked_points.ndim == 1 and checked_points.size == 2:
            checked_points = checked_points[None]
        if checked_points.ndim != 2 or checked_points.shape[1] != 2 or not len(checked_points):
            raise InvalidPromptError(f"points must be (N, 2) x, y pixels, got shape {np.shape(points)}.")
        check_inside(checked_points, image_size, "point")
        checked_labels = np.ones(len(checked_points), np.int64) if point_labels is None else np.asarray(point_labels).reshape(-1)
        if len(checked_labels) != len(checked_points):
            raise InvalidPromptError(f"Got {len(checked_points)} points but {len(checked_labels)} point_labels; give one label per point.")
        if not np.isin(checked_labels, (0, 1)).all():
            raise InvalidPromptError(f"point_labels are 1 (object) or 0 (background), got {sorted(set(checked_labels.tolist()))}.")
        checked_labels = checked_labels.astype(np.int64)
    elif point_labels is not None:
        raise InvalidPromptError("point_labels were given without points.")
    checked_mask = None
    if mask_input is not None:
        checked_mask = np.asarray(mask_input, dtype=np.float32).squeeze()
        if checked_mask.shape != (256, 256):
            raise InvalidPromptError(f"mask_input is a (256, 256) low-res mask (a result's low_res_logits row), got shape {np.shape(mask_input)}.")
        if checked_points is None:
            raise InvalidPromptError("mask_input refines the object your points name: give points with it.")
    return UserPrompts(checked_boxes, checked_points, checked_labels, checked_mask)


@dataclass(frozen=True)
class NamedPrompts:
    """The objects of one image to segment, in the order found: prompts, with each one's class name and
    score (the detector's, 1.0 for yours), and classes (the detector's, then your label if you gave objects)."""

    prompts: list[ObjectPrompt]
    names: list[str]
    scores: np.ndarray
    classes: list[str]


def name_prompts(found: Detections | None, user: UserPrompts | None, label: str) -> NamedPrompts:
    """Your boxes (first) and the detected boxes as box prompts; your points join the smallest of those
    boxes holding the first object point, or else are an object of their own (first of all)."""
    prompts = [ObjectPrompt(box=box) for box in found.xyxy] if found is not None else []
    names = found.labels if found is not None else []
    scores = found.box_scores if found is not None else np.zeros(0, np.float32)
    classes = list(found.classes) if found is not None else []
    if user is None:
        return NamedPrompts(prompts, names, scores, classes)
    yours = [ObjectPrompt(box=box) for box in user.boxes]
    prompts, names = yours + prompts, [label] * len(yours) + names
    if user.points is not None:
        positive = user.points[user.labels == 1]
        target = _box_holding([prompt.box for prompt in prompts], positive[0]) if len(positive) else None
        clicked = ObjectPrompt(box=None if target is None else prompts[target].box, points=user.points,
                               labels=user.labels, mask_logits=user.mask_input)
        if target is None:  # the clicks are an object of their own, first
            yours.append(clicked)
            prompts, names = [clicked, *prompts], [label, *names]
        else:
            prompts[target] = clicked
    scores = np.concatenate([np.ones(len(prompts) - len(scores), np.float32), scores])
    if yours and label not in classes:
        classes = [*classes, label]
    return NamedPrompts(prompts, names, scores, classes)


def _box_holding(boxes: list[np.ndarray], point: np.ndarray) -> int | None:
    """Index of the smallest box holding point, or None."""
    x, y = float(point[0]), float(point[1])
    holding = [i for i, (x0, y0, x1, y1) in enumerate(boxes) if x0 <= x <= x1 and y0 <= y <= y1]
    return min(holding, key=lambda i: float((boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]))) if holding else None
