"""lang-sam: text-prompted segmentation with Grounding DINO and Segment Anything.

The errors are imported with the package; LangSAM and the other names below load (with torch) on
first use, so that `lang-sam` starts at once and a Ctrl+C while it imports its models' code is
caught by the command like any other, not shown as a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from lang_sam.errors import (
    CheckpointError,
    InvalidImageError,
    InvalidOptionError,
    InvalidPromptError,
    LangSAMError,
    ModelLoadError,
)

if TYPE_CHECKING:
    from lang_sam.pipeline import LangSAM, PreparedImage
    from lang_sam.registry import SAM_MODELS
    from lang_sam.results import LangSAMResult
    from lang_sam.segmenter import SamPredictor, build_sam

# Each name loaded on first use, and the module that defines it.
_LAZY = {
    "LangSAM": "lang_sam.pipeline",
    "PreparedImage": "lang_sam.pipeline",
    "LangSAMResult": "lang_sam.results",
    "SAM_MODELS": "lang_sam.registry",
    "SamPredictor": "lang_sam.segmenter",
    "build_sam": "lang_sam.segmenter",
}

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


def __getattr__(name: str) -> object:
    """Import the module that defines one of the lazily loaded names, once (PEP 562)."""
    if name not in _LAZY:
        if importlib.util.find_spec(f"lang_sam.{name}") is None:
            raise AttributeError(f"module 'lang_sam' has no attribute {name!r}")
        return importlib.import_module(f"lang_sam.{name}")  # lang_sam.segmenter etc., as when imported eagerly
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
