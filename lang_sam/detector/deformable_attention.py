"""Multi-scale deformable attention in float32, whatever the model's dtype.

transformers' kernel module (grid_sample over each feature level) gives NaN when a Grounding DINO
or MM-Grounding-DINO model runs in bfloat16 on CPU. The same kernel run on float32 copies of its
inputs does not, and in a float32 model the copies are the inputs themselves, so the model then
computes exactly what transformers computes.

An earlier version replaced the kernel by one weighted gather (F.embedding_bag). It was about 3x
faster with the torch of its time, but with torch 2.14 it is 3x slower than grid_sample at the
encoder's 22,000 queries (3.3 s against 1.1 s per call on a 2-core Xeon, Swin-B feature sizes at
800x1333), so the kernel is transformers' own.
"""

from __future__ import annotations

import torch


def float32_deformable_attention_forward(
    module,
    value: torch.Tensor,
    value_spatial_shapes: torch.Tensor,
    value_spatial_shapes_list: list[tuple],
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    im2col_step: int,
) -> torch.Tensor:
    """Drop-in forward for transformers' MultiScaleDeformableAttention kernel module: its own
    forward on float32 inputs, the output in the value's dtype."""
    output = type(module).forward(
        module, value.float(), value_spatial_shapes, value_spatial_shapes_list, level_start_index,
        sampling_locations.float(), attention_weights.float(), im2col_step,
    )
    return output.to(value.dtype)
