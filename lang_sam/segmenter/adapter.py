"""SAM v1, this package's Sam, behind lang_sam.families.base.Segmenter.

It sits here, beside the model it adapts, rather than in lang_sam.families: Meta's drop-in
SamAutomaticMaskGenerator (this package, a floor below families) runs on any Segmenter, and takes
Meta's Sam by wrapping it in this adapter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lang_sam.registry import TRANSFORMERS_SAM_MODEL_TYPE
from lang_sam.segmenter import processing
from lang_sam.segmenter.build import load_sam
from lang_sam.segmenter.sam import Sam, decode_prompts, encode_image
from lang_sam.vocabulary import ImageEmbedding, MaskSet
from lang_sam.vocabulary.capabilities import NO_TEXT, NO_VIDEO, Capabilities


@dataclass(frozen=True)
class ResizedImage:
    """An image resized for SAM v1: pixels (h, w, 3) uint8, longest side 1024; original_size (H, W)."""

    pixels: np.ndarray
    original_size: tuple[int, int]


class SamV1Segmenter(Capabilities):
    """Meta's SAM (vit_h / vit_l / vit_b or any checkpoint of that architecture). Stateless: one
    instance serves many threads, each decoding against its own image's embedding."""

    family = TRANSFORMERS_SAM_MODEL_TYPE
    mask_input_size = (256, 256)
    text_via_detector = takes_clicks_and_boxes = segments_everything = exports_onnx = fine_tunes = True
    why_not = {"takes_text": NO_TEXT, "tracks_video": NO_VIDEO}

    def __init__(self, sam: Sam, name: str) -> None:
        self.sam = sam.eval()
        self.name = name
        self.device = sam.image_encoder.pos_embed.device
        self.dtype = sam.image_encoder.pos_embed.dtype

    @classmethod
    def load(cls, sam_type: str | None, checkpoint: str | None, device: torch.device, dtype: torch.dtype,
             checkpoint_dir: str | Path | None = None) -> SamV1Segmenter:
        """The SAM named sam_type or held by checkpoint (found, checked and named by load_sam), on
        device in dtype."""
        name, sam = load_sam(sam_type, checkpoint, dtype, checkpoint_dir)
        return cls(sam.to(device), name)

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.sam.parameters())

    def encoder_width(self) -> int:
        return self.sam.image_encoder.patch_embed.proj.out_channels

    def size_text(self) -> str:
        """How big it is, as describe() says it: SAM v1 sizes differ by their encoder's width."""
        return f"encoder width {self.encoder_width()}"

    def preprocess(self, image: np.ndarray) -> ResizedImage:
        return ResizedImage(processing.resize_image(image), image.shape[:2])

    def embed(self, prepared: ResizedImage) -> ImageEmbedding:
        return encode_image(self.sam, torch.from_numpy(prepared.pixels).permute(2, 0, 1)[None], prepared.original_size)

    def decode(self, embedding: ImageEmbedding, point_coords: torch.Tensor | None = None,
               point_labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
               mask_input: torch.Tensor | None = None, multimask_output: bool = False, upscale: bool = True) -> MaskSet:
        on_device = [None if t is None else t.to(self.device) for t in (point_coords, point_labels, boxes, mask_input)]
        masks, iou, low_res = decode_prompts(self.sam, embedding, *on_device, multimask_output=multimask_output,
                                             prompts_in_image_pixels=True, upscale=upscale)
        return MaskSet(None if masks is None else masks.cpu(), iou.float().cpu(), low_res.float().cpu())

    def upscale_logits(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        """(B, M, 256, 256) low-res logits -> (B, M, H, W) float32 logits at image size, on this
        model's device: decode's masks are these > 0 (segment-anything's postprocess_masks)."""
        return processing.postprocess_masks(low_res_logits.to(self.device).float(), embedding.input_size, embedding.original_size)
