"""SAM's loss, each term computed here again from its formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lang_sam.training.losses import dice_loss, mask_iou, sam_loss


def test_each_term_and_their_20_1_1_sum():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 8, 8, generator=generator) * 3
    targets = (torch.rand(3, 8, 8, generator=generator) > 0.6).float()
    iou_predictions = torch.rand(3, generator=generator)
    x, t = logits.double().numpy(), targets.double().numpy()
    p = 1 / (1 + np.exp(-x))
    cross_entropy = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    focal = np.mean((0.25 * t + 0.75 * (1 - t)) * (1 - p_t) ** 2 * cross_entropy)
    dice = np.mean([1 - (2 * (p[i] * t[i]).sum() + 1) / (p[i].sum() + t[i].sum() + 1) for i in range(3)])
    iou = np.array([((x[i] > 0) & (t[i] > 0)).sum() / ((x[i] > 0) | (t[i] > 0)).sum() for i in range(3)])
    mse = np.mean((iou_predictions.double().numpy() - iou) ** 2)
    losses = sam_loss(logits, iou_predictions, targets)
    assert losses["focal"].item() == pytest.approx(focal, rel=1e-5)
    assert losses["dice"].item() == pytest.approx(dice, rel=1e-5) and dice_loss(logits, targets).item() == pytest.approx(dice, rel=1e-5)
    np.testing.assert_allclose(mask_iou(logits, targets).numpy(), iou, rtol=1e-6)
    assert losses["iou_mse"].item() == pytest.approx(mse, rel=1e-5)
    assert losses["loss"].item() == pytest.approx(20 * focal + dice + mse, rel=1e-5)


def test_the_iou_target_carries_no_gradient_and_empty_masks_agree():
    logits = torch.full((1, 4, 4), -5.0, requires_grad=True)
    iou = torch.tensor([0.5], requires_grad=True)
    assert mask_iou(logits.detach(), torch.zeros(1, 4, 4)).item() == 1.0, "both empty: they agree"
    sam_loss(logits, iou, torch.zeros(1, 4, 4))["iou_mse"].backward()
    assert logits.grad is None or not logits.grad.any(), "the IoU term trains the IoU head only"
    assert iou.grad.item() == pytest.approx(2 * (0.5 - 1.0))
