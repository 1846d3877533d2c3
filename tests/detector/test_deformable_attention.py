"""Deformable attention in float32: a float32 model computes exactly transformers' kernel, and a
bfloat16 one gets the float32 kernel's answer in bfloat16."""

from __future__ import annotations

import types

import pytest
import torch
from transformers.models.grounding_dino.modeling_grounding_dino import MultiScaleDeformableAttention

from lang_sam.detector.deformable_attention import float32_deformable_attention_forward

SHAPES = [(20, 27), (10, 14), (5, 7), (3, 4)]


def inputs(batch: int, dtype: torch.dtype = torch.float32):
    torch.manual_seed(batch)
    tokens = sum(height * width for height, width in SHAPES)
    heads, channels, queries, points = 4, 8, 300, 4
    value = torch.randn(batch, tokens, heads, channels)
    locations = torch.rand(batch, queries, heads, len(SHAPES), points, 2) * 1.4 - 0.2  # some outside [0, 1]
    weights = torch.rand(batch, queries, heads, len(SHAPES), points).softmax(-1)
    starts = torch.tensor([0] + [h * w for h, w in SHAPES[:-1]]).cumsum(0)
    return value.to(dtype), torch.tensor(SHAPES), SHAPES, starts, locations.to(dtype), weights.to(dtype), 64


def swapped() -> MultiScaleDeformableAttention:
    module = MultiScaleDeformableAttention()
    module.forward = types.MethodType(float32_deformable_attention_forward, module)
    return module


@pytest.mark.parametrize("batch", [1, 2])
def test_float32_is_transformers_kernel_exactly(batch):
    expected = MultiScaleDeformableAttention()(*inputs(batch))
    actual = swapped()(*inputs(batch))
    assert actual.shape == (batch, 300, 32) and torch.equal(actual, expected)


def test_bfloat16_inputs_get_the_float32_kernels_answer_in_bfloat16():
    low = inputs(1, torch.bfloat16)
    output = swapped()(*low)
    reference = MultiScaleDeformableAttention()(*(t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in low))
    assert output.dtype == torch.bfloat16 and torch.isfinite(output).all()
    assert torch.equal(output, reference.to(torch.bfloat16))
