"""What a promptable segmenter speaks besides Detections: its input, an image's embedding, and the
raw answer of one batched decode. The families fill them with their own tensors; the compositions
(LangSAM, segment-everything, the server's embed/decode) pass them along without looking inside."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # the ground floor imports no torch: `lang-sam` answers Ctrl+C while torch still loads
    import torch


@runtime_checkable
class SegmenterInput(Protocol):
    """What a Segmenter's preprocess makes of one image (resized pixels in the family's own form),
    ready for embed; it touches no model, so it may be made in other threads ahead of embed."""

    original_size: tuple[int, int]


@dataclass(frozen=True)
class ImageEmbedding:
    """SAM's embedding of one image and the sizes that map prompts and masks onto it. Immutable, so
    one embedding can be cached and decoded from many threads at once.

    features: SAM v1's (1, 256, 64, 64) float32, or the tuple of tensors a transformers family
    embeds to (SAM 2.1's three levels, SAM-HQ's embedding and ViT states, SAM 3's tracker levels
    and ViT trunk states, which its text path reads too); original_size: (H, W)
    of the image; input_size: (h, w) of the model's frame that prompts are scaled into (SAM v1:
    the image resized to longest side 1024).
    """

    features: torch.Tensor | tuple[torch.Tensor, ...]
    original_size: tuple[int, int]
    input_size: tuple[int, int]


@dataclass(frozen=True)
class MaskSet:
    """What a Segmenter's decode returns for B prompts with M candidates each (M = 3 with multimask
    output, else 1).

    masks: (B, M, H, W) bool at image size, or None when decode was asked not to upscale;
    iou: (B, M) float32 predicted IoU of each candidate;
    low_res_logits: (B, M, 256, 256) float32, the logits a later decode takes back as mask_input
    and upscale_logits takes to image size.
    """

    masks: torch.Tensor | None
    iou: torch.Tensor
    low_res_logits: torch.Tensor
