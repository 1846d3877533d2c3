"""SAM's prompt encoder: points, boxes and a low-res mask become sparse and dense embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn

from lang_sam.segmenter.common import LayerNorm2d


class PromptEncoder(nn.Module):
    """Embeds prompts for the mask decoder.

    Sparse output: (B, N, embed_dim), one token per point or box corner.
    Dense output: (B, embed_dim, 64, 64), from the mask input or the learned "no mask" embedding
    (then batch 1, broadcast by the decoder).
    """

    def __init__(
        self,
        embed_dim: int = 256,
        image_embedding_size: tuple[int, int] = (64, 64),
        input_image_size: tuple[int, int] = (1024, 1024),
        mask_in_chans: int = 16,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # 0: negative point, 1: positive point, 2: box top-left, 3: box bottom-right.
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding grid, (1, embed_dim, 64, 64)."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """points: ((B, N, 2) xy in the 1024 frame, (B, N) labels); boxes: (B, 4) xyxy; masks: (B, 1, 256, 256)."""
        batch = _batch_size(points, boxes, masks)
        sparse = [torch.empty((batch, 0, self.embed_dim), device=self._device)]
        if points is not None:
            coords, labels = points
            sparse.append(self._embed_points(coords, labels, pad=boxes is None))
        if boxes is not None:
            sparse.append(self._embed_boxes(boxes))
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, *self.image_embedding_size)
        return torch.cat(sparse, dim=1), dense

    @property
    def _device(self) -> torch.device:
        return self.no_mask_embed.weight.device

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        coords = coords + 0.5  # centre of the pixel
        if pad:
            # Without a box, a "not a point" token is appended, as SAM was trained.
            coords = torch.cat([coords, torch.zeros_like(coords[:, :1])], dim=1)
            labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
        embedding = self.pe_layer.forward_with_coords(coords, self.input_image_size)
        embedding[labels == -1] = 0.0
        embedding[labels == -1] += self.not_a_point_embed.weight
        embedding[labels == 0] += self.point_embeddings[0].weight
        embedding[labels == 1] += self.point_embeddings[1].weight
        return embedding

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        embedding[:, 0, :] += self.point_embeddings[2].weight
        embedding[:, 1, :] += self.point_embeddings[3].weight
        return embedding


class PositionEmbeddingRandom(nn.Module):
    """Fourier features of normalised (x, y) coordinates with a fixed random Gaussian matrix."""

    def __init__(self, num_pos_feats: int = 64) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((2, num_pos_feats)))

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        """coords in [0, 1], (..., 2) -> (..., 2 * num_pos_feats)."""
        projected = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        projected = 2 * math.pi * projected
        return torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """(C, H, W) encoding of the centres of an H x W grid."""
        height, width = size
        device = self.positional_encoding_gaussian_matrix.device
        y = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
        x = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
        grid = torch.stack([x[None, :].expand(height, width), y[:, None].expand(height, width)], dim=-1)
        return self._encode(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Encode pixel (x, y) coordinates of an image of image_size (H, W)."""
        normalised = coords.float().clone()
        normalised[..., 0] = normalised[..., 0] / image_size[1]
        normalised[..., 1] = normalised[..., 1] / image_size[0]
        return self._encode(normalised)


def _batch_size(
    points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None, masks: torch.Tensor | None
) -> int:
    if points is not None:
        return points[0].shape[0]
    if boxes is not None:
        return boxes.shape[0]
    if masks is not None:
        return masks.shape[0]
    return 1
