"""SAM's training loss, as its paper gives it (Kirillov et al. 2023, section 3 and appendix A):
focal and dice loss on the mask logits in a ratio of 20 : 1, plus the mean squared error between
the IoU head's prediction and the IoU the predicted mask really has. Focal loss is torchvision's
(alpha 0.25, gamma 2, the values of Lin et al. that SAM cites). Pure functions of tensors."""

from __future__ import annotations

import torch
from torchvision.ops import sigmoid_focal_loss

FOCAL_WEIGHT, DICE_WEIGHT, IOU_WEIGHT = 20.0, 1.0, 1.0


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice of sigmoid(logits) and targets, (B, H, W) each, averaged over B (smoothed by 1)."""
    probabilities, targets = logits.sigmoid().flatten(1), targets.flatten(1)
    overlap = (probabilities * targets).sum(1)
    return (1 - (2 * overlap + 1) / (probabilities.sum(1) + targets.sum(1) + 1)).mean()


def mask_iou(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B,) IoU of the masks logits > 0 with the binary targets (B, H, W); 1 where both are empty."""
    predicted, targets = (logits > 0).flatten(1), targets.flatten(1) > 0.5
    union = (predicted | targets).sum(1)
    overlap = (predicted & targets).sum(1)
    return torch.where(union > 0, overlap / union.clamp(min=1), torch.ones_like(union, dtype=torch.float32)).float()


def sam_loss(logits: torch.Tensor, iou_predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """The loss of (B, H, W) mask logits with their (B,) predicted IoU against (B, H, W) targets:
    {"loss", "focal", "dice", "iou_mse"}; the IoU target carries no gradient."""
    targets = targets.to(logits.dtype)
    focal = sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0, reduction="mean")
    dice = dice_loss(logits, targets)
    iou_mse = torch.mean((iou_predictions - mask_iou(logits.detach(), targets)) ** 2)
    return {"loss": FOCAL_WEIGHT * focal + DICE_WEIGHT * dice + IOU_WEIGHT * iou_mse, "focal": focal, "dice": dice,
            "iou_mse": iou_mse}
