"""lang-sam: text-prompted segmentation with Grounding DINO and Segment Anything."""

from lang_sam.errors import (
    CheckpointError,
    InvalidImageError,
    InvalidOptionError,
    InvalidPromptError,
    LangSAMError,
    ModelLoadError,
)
from lang_sam.pipeline import LangSAM, PreparedImage
from lang_sam.results import LangSAMResult
from lang_sam.registry import SAM_MODELS
from lang_sam.segmenter import SamPredictor, build_sam

__all__ = [
    "CheckpointError",
    "InvalidImageError",
    "InvalidOptionError",
    "InvalidPromptError",
    "LangSAM",
    "LangSAMError",
    "LangSAMResult",
    "ModelLoadError",
    "PreparedImage",
    "SAM_MODELS",
    "SamPredictor",
    "build_sam",
]
