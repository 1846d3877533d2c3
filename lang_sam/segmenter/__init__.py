"""Segment Anything, implemented in lang-sam and loading Meta's official checkpoints."""

from lang_sam.registry import SAM_MODELS, SamArchitecture
from lang_sam.segmenter.automatic_mask_generator import SamAutomaticMaskGenerator
from lang_sam.segmenter.build import build_sam
from lang_sam.segmenter.predictor import SamPredictor
from lang_sam.segmenter.sam import Sam

__all__ = ["SAM_MODELS", "Sam", "SamArchitecture", "SamAutomaticMaskGenerator", "SamPredictor", "build_sam"]
