"""lang-sam: text-prompted segmentation with Grounding DINO and Segment Anything."""

from lang_sam.errors import CheckpointError, InvalidImageError, InvalidPromptError, LangSAMError
from lang_sam.segmenter import SamPredictor, build_sam

__all__ = ["CheckpointError", "InvalidImageError", "InvalidPromptError", "LangSAMError", "SamPredictor", "build_sam"]
