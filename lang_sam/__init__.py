"""lang-sam: text-prompted segmentation with Grounding DINO and Segment Anything."""

from lang_sam.errors import (
    CheckpointError,
    InvalidImageError,
    InvalidOptionError,
    InvalidPromptError,
    LangSAMError,
    ModelLoadError,
)
from lang_sam.segmenter import SamPredictor, build_sam

__all__ = [
    "CheckpointError",
    "InvalidImageError",
    "InvalidOptionError",
    "InvalidPromptError",
    "LangSAMError",
    "ModelLoadError",
    "SamPredictor",
    "build_sam",
]
