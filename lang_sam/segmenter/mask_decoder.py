"""SAM's mask decoder: prompt tokens and the image embedding become masks and IoU estimates."""

from __future__ import annotations

import torch
from torch import nn

from lang_sam.segmenter.common import MLP, LayerNorm2d
from lang_sam.segmenter.transformer import TwoWayTransformer


class MaskDecoder(nn.Module):
    """Predicts low-res (256x256) mask logits and their IoU scores for a batch of prompts."""

    def __init__(
        self,
        transformer_dim: int = 256,
        transformer: TwoWayTransformer | None = None,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer = transformer if transformer is not None else TwoWayTransformer()
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image_embeddings: (1, C, 64, 64) for one image; sparse: (B, N, C); dense: (B or 1, C, 64, 64).

        Returns mask logits (B, M, 256, 256) and IoU predictions (B, M), with M = 3 when
        multimask_output, else 1.
        """
        # Only the masks that are returned are computed: token 0 alone, or tokens 1..3.
        selected = range(1, self.num_mask_tokens) if multimask_output else range(0, 1)
        return self.predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, selected)

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        selected: range,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits (B, len(selected), 256, 256) and IoU predictions of the mask tokens in
        selected (0: the single-mask token, 1..3: the multimask ones; all four for ONNX export)."""
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.expand(batch, -1, -1), sparse_prompt_embeddings], dim=1)

        source = image_embeddings + dense_prompt_embeddings
        hidden_tokens, image_tokens = self.transformer(source, image_pe, tokens)
        iou_token_out = hidden_tokens[:, 0, :]
        mask_tokens_out = hidden_tokens[:, 1 : 1 + self.num_mask_tokens, :]

        channels, height, width = source.shape[1:]
        image_tokens = image_tokens.transpose(1, 2).reshape(batch, channels, height, width)
        upscaled = self.output_upscaling(image_tokens)
        hyper_in = torch.stack(
            [self.output_hypernetworks_mlps[index](mask_tokens_out[:, index, :]) for index in selected], dim=1
        )
        masks = (hyper_in @ upscaled.flatten(2)).reshape(batch, -1, *upscaled.shape[2:])
        iou_pred = self.iou_prediction_head(iou_token_out)
        return masks, iou_pred[:, selected.start : selected.stop]
