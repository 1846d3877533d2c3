"""The gather-based deformable attention equals transformers' grid_sample version."""

from __future__ import annotations

import pytest
import torch
from transformers.models.grounding_dino.modeling_grounding_dino import MultiScaleDeformableAttention

from lang_sam.detector.deformable_attention import multi_scale_deformable_attention


@pytest.mark.parametrize("batch", [1, 2])
def test_matches_grid_sample_including_points_outside_the_image(batch):
    torch.manual_seed(batch)
    shapes = [(20, 27), (10, 14), (5, 7), (3, 4)]
    tokens = sum(height * width for height, width in shapes)
    heads, channels, queries, levels, points = 4, 8, 300, len(shapes), 4
    value = torch.randn(batch, tokens, heads, channels)
    locations = torch.rand(batch, queries, heads, levels, points, 2) * 1.4 - 0.2  # some outside [0, 1]
    weights = torch.rand(batch, queries, heads, levels, points).softmax(-1)
    starts = torch.tensor([0] + [h * w for h, w in shapes[:-1]]).cumsum(0)
    expected = MultiScaleDeformableAttention()(value, torch.tensor(shapes), shapes, starts, locations, weights, 64)
    actual = multi_scale_deformable_attention(value, shapes, locations, weights)
    assert actual.shape == (batch, queries, heads * channels)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_bfloat16_inputs_give_finite_bfloat16_output():
    value = torch.randn(1, 12, 2, 4, dtype=torch.bfloat16)
    locations = torch.rand(1, 5, 2, 1, 3, 2, dtype=torch.bfloat16)
    weights = torch.rand(1, 5, 2, 1, 3, dtype=torch.bfloat16)
    output = multi_scale_deformable_attention(value, [(3, 4)], locations, weights)
    assert output.dtype == torch.bfloat16 and torch.isfinite(output).all()
