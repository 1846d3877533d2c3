"""Multi-scale deformable attention as one weighted gather (CPU and GPU, any dtype).

Bilinear sampling with zero padding is a weighted sum of the four value rows around each sampling
point. So for every (query, head) the attention output is a weighted sum of levels x points x 4
rows of the value table, which ``F.embedding_bag(mode="sum", per_sample_weights=...)`` computes in
one optimised call. It equals transformers' ``grid_sample`` version (align_corners=False,
padding "zeros") up to float rounding, is several times faster on CPU, and runs in float32 whatever
the model's dtype (transformers' version gives NaN in bfloat16 on CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multi_scale_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """value: (B, S, heads, D) with S = sum of H_l * W_l; sampling_locations: (B, Q, heads, L, P, 2)
    as (x, y) in [0, 1]; attention_weights: (B, Q, heads, L, P). Returns (B, Q, heads * D)."""
    batch, tokens, heads, channels = value.shape
    queries = sampling_locations.shape[1]
    # Row (b * heads + h) * tokens + s of the table is value[b, s, h].
    table = value.float().permute(0, 2, 1, 3).reshape(batch * heads * tokens, channels)
    table_offset = (torch.arange(batch * heads, device=value.device) * tokens).view(batch, 1, heads, 1)

    indices, weights = [], []
    level_start = 0
    for level, (height, width) in enumerate(spatial_shapes):
        location = sampling_locations[:, :, :, level].float()  # (B, Q, heads, P, 2)
        attention = attention_weights[:, :, :, level].float()  # (B, Q, heads, P)
        x = location[..., 0] * width - 0.5  # pixel coordinates, align_corners=False
        y = location[..., 1] * height - 0.5
        x0, y0 = x.floor(), y.floor()
        fx, fy = x - x0, y - y0
        for dx, dy, corner_weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            cx, cy = x0 + dx, y0 + dy
            inside = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)  # zero padding outside
            row = cy.clamp(0, height - 1) * width + cx.clamp(0, width - 1)
            indices.append(row.long() + level_start + table_offset)
            weights.append(corner_weight * attention * inside)
        level_start += height * width

    indices = torch.cat(indices, dim=-1).reshape(batch * queries * heads, -1)
    weights = torch.cat(weights, dim=-1).reshape(batch * queries * heads, -1)
    output = F.embedding_bag(indices, table, per_sample_weights=weights, mode="sum")
    return output.view(batch, queries, heads * channels).to(value.dtype)


def deformable_attention_forward(
    _module,
    value: torch.Tensor,
    value_spatial_shapes: torch.Tensor,
    value_spatial_shapes_list: list[tuple],
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    im2col_step: int,
) -> torch.Tensor:
    """Drop-in forward for transformers' MultiScaleDeformableAttention kernel module."""
    return multi_scale_deformable_attention(value, value_spatial_shapes_list, sampling_locations, attention_weights)
