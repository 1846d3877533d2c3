"""The Segment Anything model: image encoder, prompt encoder and mask decoder together."""

from __future__ import annotations

from torch import nn

from lang_sam.segmenter.image_encoder import ImageEncoderViT
from lang_sam.segmenter.mask_decoder import MaskDecoder
from lang_sam.segmenter.prompt_encoder import PromptEncoder


class Sam(nn.Module):
    """Holds the three parts under the names Meta's checkpoints use.

    Pre- and post-processing live in ``lang_sam.segmenter.processing``; prompting lives in
    ``SamPredictor``.
    """

    def __init__(self, image_encoder: ImageEncoderViT, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder):
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
