"""SAM's image encoder: a ViT with windowed and global attention and a 256-channel neck.

Parameter names follow Meta's checkpoints (``image_encoder.*``) so the official files load with
strict key matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lang_sam.segmenter.common import LayerNorm2d, MLPBlock


class ImageEncoderViT(nn.Module):
    """Maps a normalised, padded (B, 3, 1024, 1024) image to (B, 256, 64, 64) embeddings."""

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        out_chans: int = 256,
        window_size: int = 14,
        global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11),
    ) -> None:
        super().__init__()
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim))
        self.blocks = nn.ModuleList(
            Block(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                window_size=0 if index in global_attn_indexes else window_size,
                input_size=(grid, grid),
            )
            for index in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))


class PatchEmbed(nn.Module):
    """(B, C, H, W) image to (B, H/p, W/p, D) patch tokens."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class Block(nn.Module):
    """Pre-norm transformer block; attention is windowed when window_size > 0, else global."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, window_size: int, input_size: tuple[int, int]
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        attention_size = (window_size, window_size) if window_size > 0 else input_size
        self.attn = Attention(dim, num_heads, attention_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            height, width = x.shape[1], x.shape[2]
            windows, padded_size = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(windows), self.window_size, padded_size, (height, width))
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Attention(nn.Module):
    """Multi-head attention with SAM's decomposed relative position bias, never materialising
    a (tokens x tokens) matrix for all queries at once.

    The bias for query i and key j is ``q_i . Rh[h_i - h_j] + q_i . Rw[w_i - w_j]``, that is
    ``rel_h[i, h_j] + rel_w[i, w_j]``. Queries are processed ``query_chunk`` at a time, a size
    that keeps a slice's scores in cache (the reference holds the whole matrix per head, twice, in
    every global block):

    - float32: the bias of a query slice is the mask of ``scaled_dot_product_attention``'s fused
      kernel (fastest here for float32).
    - bfloat16: the bias rides inside the score matmul, as the dot product of ``[rel_h_i, rel_w_i]``
      with the one-hot code of ``(h_j, w_j)``, so one AMX matmul gives biased scores, then softmax
      and a second matmul (3x faster here than the fused kernel in bfloat16).
    """

    query_chunk = 128

    def __init__(self, dim: int, num_heads: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))
        height, width = input_size
        # relative_h[i, j] indexes rel_pos_h for query row i and key row j.
        self.register_buffer("relative_h", _relative_index(height), persistent=False)
        self.register_buffer("relative_w", _relative_index(width), persistent=False)
        key_rows = torch.arange(height).repeat_interleave(width)
        key_cols = torch.arange(width).repeat(height)
        key_position_code = torch.cat([F.one_hot(key_rows, height), F.one_hot(key_cols, width)], dim=1)
        self.register_buffer("key_position_code", key_position_code.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        batch, height, width, channels = x.shape
        tokens = height * width
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, tokens, head_dim)
        v = v.contiguous()  # read once per query slice

        grid_q = q.reshape(batch * self.num_heads, height, width, -1)
        rel_h = torch.einsum("bhwc,hkc->bhwk", grid_q, self.rel_pos_h[self.relative_h])
        rel_w = torch.einsum("bhwc,wkc->bhwk", grid_q, self.rel_pos_w[self.relative_w])
        rel_h = rel_h.reshape(batch, self.num_heads, tokens, height)
        rel_w = rel_w.reshape(batch, self.num_heads, tokens, width)

        if x.dtype == torch.float32:
            out = torch.cat(
                [
                    F.scaled_dot_product_attention(
                        q[:, :, rows],
                        k,
                        v,
                        attn_mask=(rel_h[:, :, rows, :, None] + rel_w[:, :, rows, None, :]).flatten(3),
                        scale=self.scale,
                    )
                    for rows in _slices(tokens, self.query_chunk)
                ],
                dim=2,
            )
        else:
            biased_q = torch.cat([q * self.scale, rel_h, rel_w], dim=-1)
            coded_k = torch.cat([k, self.key_position_code.to(k.dtype).expand(batch, self.num_heads, -1, -1)], dim=-1)
            coded_k_t = coded_k.transpose(-1, -2)
            out = torch.cat(
                [torch.softmax(biased_q[:, :, rows] @ coded_k_t, dim=-1) @ v for rows in _slices(tokens, self.query_chunk)],
                dim=2,
            )
        out = out.transpose(1, 2).reshape(batch, height, width, channels)
        return self.proj(out)


def _slices(length: int, step: int) -> list[slice]:
    return [slice(start, start + step) for start in range(0, length, step)]


def _relative_index(size: int) -> torch.Tensor:
    """(size, size) table of ``i - j + size - 1``: the rel_pos row for query i and key j."""
    coords = torch.arange(size)
    return coords[:, None] - coords[None, :] + size - 1


def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad (B, H, W, C) to whole windows and cut it into (B * windows, ws, ws, C)."""
    batch, height, width, channels = x.shape
    pad_h = (window_size - height % window_size) % window_size
    pad_w = (window_size - width % window_size) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    padded_h, padded_w = height + pad_h, width + pad_w
    x = x.view(batch, padded_h // window_size, window_size, padded_w // window_size, window_size, channels)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, channels)
    return windows, (padded_h, padded_w)


def window_unpartition(
    windows: torch.Tensor, window_size: int, padded_size: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of window_partition: (B * windows, ws, ws, C) back to (B, H, W, C), padding removed."""
    padded_h, padded_w = padded_size
    height, width = size
    batch = windows.shape[0] // (padded_h * padded_w // window_size // window_size)
    x = windows.view(batch, padded_h // window_size, padded_w // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, padded_h, padded_w, -1)
    return x[:, :height, :width, :].contiguous()
