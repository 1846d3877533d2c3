"""SAM's two-way transformer: prompt tokens and image tokens attend to each other.

Image tensors may have batch 1 while the prompt tokens have batch B: the image side is then
shared by every prompt and projected once instead of once per prompt (the reference copies the
image embedding B times). Results are the same as with a repeated image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lang_sam.segmenter.common import MLPBlock


class TwoWayTransformer(nn.Module):
    def __init__(
        self,
        depth: int = 2,
        embedding_dim: int = 256,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        attention_downsample_rate: int = 2,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        """layer_norm_eps: the eps of each block's norm1-4 (Meta's 1e-5; transformers' SamModel
        reads it from mask_decoder_config.layer_norm_eps). norm_final_attn keeps 1e-5 in both
        layouts: SamModel builds its layer_norm_final_attn without the config's eps."""
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim=embedding_dim,
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=index == 0,
                layer_norm_eps=layer_norm_eps,
            )
            for index in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image_embedding: (B or 1, C, H, W); image_pe: (1, C, H, W); point_embedding: (B, N, C).

        Returns the processed tokens (B, N, C) and image tokens (B, H*W, C).
        """
        keys = image_embedding.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        attn_out = self.final_attn_token_to_image(q=queries + point_embedding, k=keys + key_pe, v=keys)
        queries = self.norm_final_attn(queries + attn_out)
        return queries, keys.expand(queries.shape[0], -1, -1)


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token-to-image attention, token MLP, image-to-token attention."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim, eps=layer_norm_eps)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim, eps=layer_norm_eps)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(embedding_dim, eps=layer_norm_eps)
        self.norm4 = nn.LayerNorm(embedding_dim, eps=layer_norm_eps)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries: (B, N, C); keys: (B or 1, HW, C). Returns queries (B, N, C), keys (B, HW, C)."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q=q, k=q, v=queries)
        queries = self.norm1(queries)

        keys_with_pe = keys + key_pe
        q = queries + query_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q=q, k=keys_with_pe, v=keys))
        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(q=keys_with_pe, k=q, v=queries))
        return queries, keys


class Attention(nn.Module):
    """Multi-head attention whose internal width is embedding_dim / downsample_rate.

    Either side may have batch 1 against batch B on the other: the shared side is projected once.
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: (Bq, Nq, C); k, v: (Bk, Nk, C), with Bq == Bk or one of them 1. Returns (max(Bq, Bk), Nq, C)."""
        q = self._split_heads(self.q_proj(q))
        k = self._split_heads(self.k_proj(k))
        v = self._split_heads(self.v_proj(v))
        batch = max(q.shape[0], k.shape[0])
        if k.shape[0] == 1 and batch > 1:
            # Keys shared by all prompts: stack every prompt's queries against the one key set.
            num_queries = q.shape[2]
            q = q.transpose(0, 1).reshape(1, self.num_heads, batch * num_queries, -1)
            out = F.scaled_dot_product_attention(q, k, v)
            out = out.reshape(self.num_heads, batch, num_queries, -1).transpose(0, 1)
        else:
            out = F.scaled_dot_product_attention(q.expand(batch, -1, -1, -1), k, v)
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        return x.reshape(batch, tokens, self.num_heads, -1).transpose(1, 2)
