"""The detectors by the names earlier releases imported them: load_detector (the one loader,
lang_sam.families.loading.load, asked for a detector) and the OWLv2 adapter."""

from __future__ import annotations

from pathlib import Path

import torch

from lang_sam.families.base import Detector
from lang_sam.families.loading import load
from lang_sam.families.owlv2 import Owlv2Detector  # noqa: F401 (its old home)
from lang_sam.registry import DETECTOR


def load_detector(model: str | Path, device: str | torch.device | None = None,
                  dtype: torch.dtype | str | None = None) -> Detector:
    """The detector of a registry name (lang_sam.registry.DETECTORS), a Hugging Face repo id, a
    local folder saved with save_pretrained, or an IDEA original .pth (Grounding DINO); its family
    from the registry, else from config.json's model_type (read from the folder, the cache or the
    hub; offline and not cached, a ModelLoadError says what to do)."""
    return load(model, (DETECTOR,), device=device, dtype=dtype)
