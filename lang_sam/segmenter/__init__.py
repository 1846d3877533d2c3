"""Segment Anything, implemented in lang-sam and loading Meta's official checkpoints."""

from lang_sam.segmenter.build import SAM_ARCHITECTURES, SAM_CHECKPOINT_FILES, SamArchitecture, build_sam
from lang_sam.segmenter.predictor import SamPredictor
from lang_sam.segmenter.sam import Sam

__all__ = ["SAM_ARCHITECTURES", "SAM_CHECKPOINT_FILES", "Sam", "SamArchitecture", "SamPredictor", "build_sam"]
