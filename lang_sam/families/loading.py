"""One loader for every model: lang_sam.registry.resolve says what a name, file, folder or repo id
is (family and kind), ADAPTERS which adapter runs it. load_segmenter, load_video_segmenter (and
lang_sam.families.detectors.load_detector) are that loader asked for one group of kinds, with
their old arguments."""

from __future__ import annotations

from pathlib import Path

import torch

from lang_sam.detector.grounding_dino import GroundingDinoDetector
from lang_sam.io.weights import config_model_type
from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.errors import ModelLoadError
from lang_sam.families.base import ConceptTracker, Segmenter, TextSegmenter, VideoSegmenter
from lang_sam.families.owlv2 import Owlv2Detector
from lang_sam.families.sam2_video import Sam2VideoSegmenter
from lang_sam.families.sam3 import Sam3LiteTextSegmenter, Sam3TextSegmenter
from lang_sam.families.sam3_video import Sam3VideoTracker
from lang_sam.segmenter.adapter import SamV1Segmenter
from lang_sam.families.transformers_sam import TransformersSegmenter
from lang_sam.families.universal import UniversalSegmenter
from lang_sam.registry import (
    CONCEPT_TRACKER, DETECTOR, IMAGE_SEGMENTER_KINDS, KINDS, SEGMENTER, TEXT_SEGMENTER, UNIVERSAL, VIDEO_KINDS,
    VIDEO_SEGMENTER, ResolvedModel, canonical_sam_name, default_sam_type, names_of, resolve,
)

# kind -> family (config.json's model_type) -> the adapter that runs it as that kind
ADAPTERS: dict[str, dict[str, type]] = {
    SEGMENTER: {"sam": SamV1Segmenter, "sam2": TransformersSegmenter, "sam2_video": TransformersSegmenter,
                "sam_hq": TransformersSegmenter, "edgetam": TransformersSegmenter, "edgetam_video": TransformersSegmenter},
    TEXT_SEGMENTER: {"sam3": Sam3TextSegmenter, "sam3_video": Sam3TextSegmenter, "sam3_lite_text": Sam3LiteTextSegmenter},
    VIDEO_SEGMENTER: {"sam2": Sam2VideoSegmenter, "sam2_video": Sam2VideoSegmenter,
                      "edgetam": Sam2VideoSegmenter, "edgetam_video": Sam2VideoSegmenter},
    CONCEPT_TRACKER: {"sam3": Sam3VideoTracker, "sam3_video": Sam3VideoTracker},
    DETECTOR: {"grounding-dino": GroundingDinoDetector, "mm-grounding-dino": GroundingDinoDetector, "owlv2": Owlv2Detector},
    UNIVERSAL: {"mask2former": UniversalSegmenter, "oneformer": UniversalSegmenter},
}
# kind -> the adapter of a model whose family is unknown before loading (no config.json, a repo not
# cached): its own loader reads the model and says what is wrong with it. A detector's family is
# read from its config first (from the hub if need be): detectors are told apart by it.
FALLBACK_ADAPTERS: dict[str, type] = {
    SEGMENTER: SamV1Segmenter, TEXT_SEGMENTER: Sam3TextSegmenter, VIDEO_SEGMENTER: Sam2VideoSegmenter,
    CONCEPT_TRACKER: Sam3VideoTracker, UNIVERSAL: UniversalSegmenter,
}
DEFAULT_VIDEO_SEGMENTER = "sam2.1-hiera-tiny"


def load(name_or_path: str | Path, kinds: tuple[str, ...] = KINDS, *, name: str | None = None,
         device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
         checkpoint_dir: str | Path | None = None):
    """The adapter of name_or_path as the first of kinds it loads as (lang_sam.registry.resolve),
    on device in dtype (bad options fail before anything is read); name: what to call it (default:
    the registry's name, the repo id, or the file's or folder's)."""
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    resolved = resolve(name_or_path, kinds, checkpoint_dir)
    adapter = adapter_of(resolved)
    if adapter is SamV1Segmenter:  # our own SAM finds its file by name or path and names it by what it holds
        return SamV1Segmenter.load(name if resolved.source else resolved.name, resolved.source, device, dtype, checkpoint_dir)
    source = resolved.source or resolved.name
    if resolved.kind in (DETECTOR, UNIVERSAL):  # these take registry names, repo ids and folders, and name themselves
        return adapter(source, device=device, dtype=dtype)
    return adapter(source, device=device, dtype=dtype, name=name or resolved.name)


def adapter_of(resolved: ResolvedModel) -> type:
    """The adapter class that runs resolved as its kind (see ADAPTERS and FALLBACK_ADAPTERS)."""
    adapters = ADAPTERS[resolved.kind]
    if resolved.family in adapters:
        return adapters[resolved.family]
    if resolved.kind in FALLBACK_ADAPTERS:
        return FALLBACK_ADAPTERS[resolved.kind]
    family = resolved.family or config_model_type(resolved.source or resolved.name, "detector")
    if family not in adapters:
        raise ModelLoadError(
            f"{resolved.source or resolved.name} holds a {family!r} model, which is not a detector lang-sam runs: give a "
            f"Grounding DINO, MM-Grounding-DINO or OWLv2 model (model_type {', '.join(map(repr, adapters))}), "
            f"e.g. one of {', '.join(names_of((DETECTOR,)))}."
        )
    return adapters[family]


def load_segmenter(sam_type: str | None = None, checkpoint: str | Path | None = None,
                   device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
                   checkpoint_dir: str | Path | None = None) -> Segmenter | TextSegmenter:
    """The image segmenter of checkpoint (called sam_type when given), else of sam_type, else vit_h."""
    sam_type = canonical_sam_name(sam_type)
    if checkpoint is not None:
        return load(checkpoint, IMAGE_SEGMENTER_KINDS, name=sam_type, device=device, dtype=dtype, checkpoint_dir=checkpoint_dir)
    return load(default_sam_type(sam_type, checkpoint), IMAGE_SEGMENTER_KINDS, device=device, dtype=dtype,
                checkpoint_dir=checkpoint_dir)


def load_video_segmenter(sam_type: str | None = None, checkpoint: str | Path | None = None,
                         device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
                         checkpoint_dir: str | Path | None = None) -> VideoSegmenter | ConceptTracker:
    """The video model for tracking: checkpoint (a Sam2VideoModel, EdgeTamVideoModel or Sam3VideoModel
    folder or repo id, called sam_type when given), else sam_type (a SAM 2.1, EdgeTAM or SAM 3 name,
    whose repos hold the video models, or a folder NAME in the checkpoint folder), else
    DEFAULT_VIDEO_SEGMENTER."""
    if checkpoint is not None:
        return load(checkpoint, VIDEO_KINDS, name=sam_type, device=device, dtype=dtype, checkpoint_dir=checkpoint_dir)
    return load(sam_type or DEFAULT_VIDEO_SEGMENTER, VIDEO_KINDS, device=device, dtype=dtype, checkpoint_dir=checkpoint_dir)


def load_click_tracker(name_or_path: str | Path, device: str | torch.device | None = None,
                       dtype: torch.dtype | str | None = None, checkpoint_dir: str | Path | None = None) -> Sam2VideoSegmenter:
    """The video model that follows clicked objects: name_or_path (a registry name, folder or repo
    id) holding SAM 2.1 video, EdgeTAM video or SAM 3 (whose tracker it loads alone, without the
    concept detector); another model is refused, naming those."""
    resolved = resolve(name_or_path, KINDS, checkpoint_dir)
    return Sam2VideoSegmenter(resolved.source or resolved.name, device=device, dtype=dtype, name=resolved.name)
