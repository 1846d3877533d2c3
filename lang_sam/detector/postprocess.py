"""Grounding DINO post-processing as pure functions of tensors.

Each query gets exactly one of the user's classes, the class whose token span scores highest, so
a label is never a merged phrase, a word piece, "[SEP]" or an empty string.
"""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms

from lang_sam.vocabulary import Detections


def select_detections(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    token_spans: list[tuple[int, int]],
    box_threshold: float,
    text_threshold: float,
    image_size: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the queries that clear both thresholds and give each one class.

    logits: (Q, T) token logits of one image; boxes: (Q, 4) normalised (cx, cy, w, h);
    token_spans: [start, end) token range of each class in the caption; image_size: (H, W).
    A query's box score is its highest probability over all caption tokens (as in Grounding DINO);
    its class is the one whose span holds the highest probability; it is kept when box score >=
    box_threshold and that class's score >= text_threshold.
    Returns pixel xyxy boxes (N, 4) clipped to the image, box scores (N,), class ids (N,) and
    class scores (N,), sorted by box score.
    """
    probabilities = logits.float().sigmoid()
    class_scores = torch.stack([probabilities[:, start:end].max(dim=-1).values for start, end in token_spans], dim=-1)
    best_class_scores, class_ids = class_scores.max(dim=-1)
    box_scores = probabilities.max(dim=-1).values
    keep = (box_scores >= box_threshold) & (best_class_scores >= text_threshold)
    order = box_scores[keep].argsort(descending=True, stable=True)
    pixel_boxes = to_pixel_xyxy(boxes[keep].float(), image_size)[order]
    return pixel_boxes, box_scores[keep][order], class_ids[keep][order], best_class_scores[keep][order]


def to_pixel_xyxy(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Normalised (cx, cy, w, h) to pixel (x0, y0, x1, y1), clipped to an image of (H, W)."""
    height, width = image_size
    center_x, center_y, box_width, box_height = boxes.unbind(-1)
    corners = torch.stack(
        [center_x - box_width / 2, center_y - box_height / 2, center_x + box_width / 2, center_y + box_height / 2],
        dim=-1,
    )
    scale = torch.tensor([width, height, width, height], dtype=corners.dtype, device=corners.device)
    corners = corners * scale
    return torch.stack(
        [corners[..., 0].clamp(0, width), corners[..., 1].clamp(0, height), corners[..., 2].clamp(0, width), corners[..., 3].clamp(0, height)],
        dim=-1,
    )


def ranked_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    class_ids: torch.Tensor,
    class_scores: torch.Tensor,
    classes: list[str],
    image_size: tuple[int, int],
    nms_iou_threshold: float | None = None,
) -> Detections:
    """One image's detections, sorted by score (highest first, ties in their given order), after
    class-wise NMS when nms_iou_threshold is set.

    boxes: (N, 4) pixel xyxy inside an image of image_size (H, W); scores: (N,) box scores;
    class_ids: (N,) indices into classes; class_scores: (N,) score of each detection's own class,
    kept as ``data["class_scores"]``.
    """
    order = scores.argsort(descending=True, stable=True)
    if nms_iou_threshold is not None:
        order = class_wise_nms(boxes, scores, class_ids, nms_iou_threshold)
    return Detections(
        xyxy=boxes[order].float().cpu().numpy(), image_size=image_size, box_scores=scores[order].float().cpu().numpy(),
        class_ids=class_ids[order].cpu().numpy(), classes=tuple(classes),
        data={"class_scores": class_scores[order].float().cpu().numpy()},
    )


def class_wise_nms(
    boxes: torch.Tensor, scores: torch.Tensor, class_ids: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Indices kept by non-maximum suppression within each class, highest score first."""
    return batched_nms(boxes, scores, class_ids, iou_threshold)
