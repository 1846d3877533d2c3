"""Segment Anything, implemented in lang-sam and loading Meta's official checkpoints.

A drop-in for Meta's segment-anything: ``from lang_sam.segmenter import sam_model_registry,
SamPredictor, SamAutomaticMaskGenerator, ResizeLongestSide`` replaces the same import from
``segment_anything`` (and ``segment_anything.utils.transforms``).
"""

from lang_sam.registry import SAM_MODELS, SamArchitecture
from lang_sam.segmenter.automatic_mask_generator import SamAutomaticMaskGenerator
from lang_sam.segmenter.build import build_sam
from lang_sam.segmenter.builders import build_sam_vit_b, build_sam_vit_h, build_sam_vit_l, sam_model_registry
from lang_sam.segmenter.predictor import SamPredictor
from lang_sam.segmenter.sam import Sam
from lang_sam.segmenter.transforms import ResizeLongestSide

__all__ = [
    "SAM_MODELS", "ResizeLongestSide", "Sam", "SamArchitecture", "SamAutomaticMaskGenerator", "SamPredictor",
    "build_sam", "build_sam_vit_b", "build_sam_vit_h", "build_sam_vit_l", "sam_model_registry",
]
