"""Boxes from masks, in the one convention every lang-sam result uses: pixel-edge xyxy, so a box
[x0, y0, x1, y1] covers the pixels x0 .. x1 - 1 and y0 .. y1 - 1 (x1, y1 one past the last pixel of
the mask, as the detectors' boxes in pixels are). An empty mask gets [0, 0, 0, 0]."""

from __future__ import annotations

import numpy as np
import torch


def masks_to_boxes(masks: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """(N, H, W) bool masks -> (N, 4) pixel-edge xyxy boxes, int64 for a tensor (on its device) and
    float32 for an array; (0, 4) for no masks."""
    if isinstance(masks, np.ndarray):  # any layout (a flipped view) and any truthy dtype, as bool
        return masks_to_boxes(torch.from_numpy(np.ascontiguousarray(masks, dtype=bool))).numpy().astype(np.float32)
    height, width = masks.shape[-2:]
    rows, columns = masks.any(dim=2), masks.any(dim=1)
    y0, y1 = _first_and_past_last(rows, height)
    x0, x1 = _first_and_past_last(columns, width)
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    return torch.where((x1 <= x0)[:, None], torch.zeros_like(boxes), boxes)


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool mask -> (4,) float32 pixel-edge xyxy (masks_to_boxes of one mask)."""
    return masks_to_boxes(mask[None])[0]


def _first_and_past_last(present: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of (N, size) bool: the first True position and one past the last (size and 0 if none)."""
    positions = torch.arange(size, device=present.device)
    first = torch.where(present, positions, size).amin(dim=1)
    past_last = torch.where(present, positions + 1, 0).amax(dim=1)
    return first, past_last
