"""segment-anything's builder names over build_sam and the one model registry, so that
``sam_model_registry["vit_h"](checkpoint=...)`` works as it does with Meta's package."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lang_sam.errors import InvalidOptionError
from lang_sam.registry import DEFAULT_SAM
from lang_sam.segmenter.build import build_sam
from lang_sam.segmenter.sam import Sam


def build_sam_vit_h(checkpoint: str | Path | None = None) -> Sam:
    """SAM ViT-H in eval mode: Meta's sam_vit_h_4b8939.pth loaded strictly, or random weights."""
    return build_sam("vit_h", checkpoint)


def build_sam_vit_l(checkpoint: str | Path | None = None) -> Sam:
    """SAM ViT-L in eval mode: Meta's sam_vit_l_0b3195.pth loaded strictly, or random weights."""
    return build_sam("vit_l", checkpoint)


def build_sam_vit_b(checkpoint: str | Path | None = None) -> Sam:
    """SAM ViT-B in eval mode: Meta's sam_vit_b_01ec64.pth loaded strictly, or random weights."""
    return build_sam("vit_b", checkpoint)


class SamModelRegistry(dict[str, Callable[..., Sam]]):
    """Model type -> builder, as segment-anything's sam_model_registry; an unknown type is an
    InvalidOptionError listing the known ones (Meta's dict raises a bare KeyError)."""

    def __missing__(self, key: object) -> Callable[..., Sam]:
        raise InvalidOptionError(f"Unknown SAM model type {key!r}; choose one of {', '.join(self)}.")


_BUILDERS = {"vit_h": build_sam_vit_h, "vit_l": build_sam_vit_l, "vit_b": build_sam_vit_b}
sam_model_registry = SamModelRegistry(default=_BUILDERS[DEFAULT_SAM], **_BUILDERS)
