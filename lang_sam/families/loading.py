"""One way from a segmenter's name or checkpoint to the adapter that runs it: SAM v1 (our own code)
for Meta's checkpoints and transformers SAM folders, transformers' models for SAM 2.1, SAM-HQ and
SAM 3 (and their video models for tracking), chosen by the registry entry or by config.json's model_type."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.errors import ModelLoadError
from lang_sam.families.base import ConceptTracker, Segmenter, TextSegmenter, VideoSegmenter
from lang_sam.io.weights import is_hub_repo_id
from lang_sam.registry import (
    FAMILY_MODELS, TEXT_FAMILIES, TRANSFORMERS_SAM_MODEL_TYPE, TRANSFORMERS_SEGMENTER_TYPES, VIDEO_FAMILIES,
    canonical_sam_name, default_sam_type, family_of_folder, local_sam_checkpoints,
)
from lang_sam.registry import checkpoint_dir as find_checkpoint_dir

SAM_V1 = TRANSFORMERS_SAM_MODEL_TYPE  # Meta's SAM and transformers' SamModel folders: our own code runs both


@dataclass(frozen=True)
class SegmenterSource:
    """Where a segmenter comes from: family (SAM_V1, "sam2", "sam_hq", "sam3"); source: the repo
    id or folder a transformers family loads from (None for SAM v1, which finds its own file);
    name: what it is called in results, the app and the server."""

    family: str
    source: str | None
    name: str | None


def resolve_segmenter(sam_type: str | None, checkpoint: str | Path | None,
                      checkpoint_dir: str | Path | None = None) -> SegmenterSource:
    """Which family runs sam_type / checkpoint: a checkpoint folder by its model_type, a repo id by
    the registry or its cached config, a name by the registry or the checkpoint folder; anything
    else is SAM v1 (whose loader checks names and files and says what is wrong)."""
    sam_type = canonical_sam_name(sam_type)
    if checkpoint is not None:
        family = _checkpoint_family(checkpoint)
        if family in TRANSFORMERS_SEGMENTER_TYPES:
            return SegmenterSource(family, str(checkpoint), sam_type or _checkpoint_name(checkpoint))
        return SegmenterSource(SAM_V1, None, sam_type)
    if sam_type in FAMILY_MODELS:
        entry = FAMILY_MODELS[sam_type]
        return SegmenterSource(entry.family, entry.repo_id, sam_type)
    own = local_sam_checkpoints(checkpoint_dir).get(sam_type) if isinstance(sam_type, str) else None
    if own is not None and own.is_dir() and family_of_folder(own) in TRANSFORMERS_SEGMENTER_TYPES:
        return SegmenterSource(family_of_folder(own), str(own), sam_type)
    return SegmenterSource(SAM_V1, None, default_sam_type(sam_type, checkpoint))


def load_segmenter(sam_type: str | None = None, checkpoint: str | Path | None = None,
                   device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
                   checkpoint_dir: str | Path | None = None) -> Segmenter | TextSegmenter:
    """The adapter for sam_type / checkpoint (see resolve_segmenter), on device in dtype."""
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    resolved = resolve_segmenter(sam_type, checkpoint, checkpoint_dir)
    if resolved.family == SAM_V1:
        from lang_sam.segmenter.adapter import SamV1Segmenter
        from lang_sam.segmenter.build import load_sam

        name, sam = load_sam(sam_type, checkpoint, dtype, checkpoint_dir)
        return SamV1Segmenter(sam.to(device), name)
    if resolved.family in TEXT_FAMILIES:
        from lang_sam.families.sam3 import Sam3TextSegmenter

        return Sam3TextSegmenter(resolved.source, device=device, dtype=dtype, name=resolved.name)
    from lang_sam.families.transformers_sam import TransformersSegmenter

    return TransformersSegmenter(resolved.source, device=device, dtype=dtype, name=resolved.name)


DEFAULT_VIDEO_SEGMENTER = "sam2.1-hiera-tiny"


# the adapter that tracks each of registry.VIDEO_FAMILIES (module in lang_sam.families, class): SAM 2.1
# video carries a detector's boxes through the video; SAM 3 video detects and tracks the classes itself
VIDEO_ADAPTERS = {
    "sam2": ("sam2_video", "Sam2VideoSegmenter"), "sam2_video": ("sam2_video", "Sam2VideoSegmenter"),
    "sam3": ("sam3_video", "Sam3VideoTracker"), "sam3_video": ("sam3_video", "Sam3VideoTracker"),
}


def load_video_segmenter(sam_type: str | None = None, checkpoint: str | Path | None = None,
                         device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
                         checkpoint_dir: str | Path | None = None) -> VideoSegmenter | ConceptTracker:
    """The video model for tracking, its adapter chosen by its family (VIDEO_ADAPTERS): checkpoint
    (a Sam2VideoModel or Sam3VideoModel folder or repo id), else sam_type (a SAM 2.1 or SAM 3
    registry name, whose repos hold the video models, or a folder NAME in the checkpoint folder),
    else DEFAULT_VIDEO_SEGMENTER."""
    if checkpoint is not None:
        return _video_adapter(_checkpoint_family(checkpoint))(checkpoint, device, dtype,
                                                              name=sam_type or _checkpoint_name(checkpoint))
    name = sam_type or DEFAULT_VIDEO_SEGMENTER
    entry = FAMILY_MODELS.get(name)
    if entry is not None and entry.family in VIDEO_FAMILIES:
        return _video_adapter(entry.family)(entry.repo_id, device, dtype, name=name)
    folder = find_checkpoint_dir(checkpoint_dir)
    if folder is not None and (folder / name).is_dir():
        return _video_adapter(family_of_folder(folder / name))(folder / name, device, dtype, name=name)
    video_names = [model for model, found in FAMILY_MODELS.items() if found.family in VIDEO_FAMILIES]
    raise ModelLoadError(f"Video tracking runs SAM 2.1 video or SAM 3 video; {name!r} is neither. Choose "
                         f"{', '.join(video_names)}, or give a folder or repo id of a Sam2VideoModel or Sam3VideoModel "
                         "as the checkpoint.")


def _video_adapter(family: str | None) -> type:
    """The adapter class of a video family; SAM 2.1's for any other (its loader says what is wrong)."""
    from importlib import import_module

    module, name = VIDEO_ADAPTERS.get(family, VIDEO_ADAPTERS["sam2_video"])
    return getattr(import_module(f"lang_sam.families.{module}"), name)


def _checkpoint_family(checkpoint: str | Path) -> str | None:
    """The model_type of a checkpoint folder, of a registry repo id, or of a repo id's cached config."""
    if Path(checkpoint).is_dir():
        return family_of_folder(checkpoint)
    if not is_hub_repo_id(checkpoint):
        return None
    by_repo = {entry.repo_id: entry.family for entry in FAMILY_MODELS.values()}
    if str(checkpoint) in by_repo:
        return by_repo[str(checkpoint)]
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(str(checkpoint), "config.json")
    return family_of_folder(Path(cached).parent) if isinstance(cached, str) else None


def _checkpoint_name(checkpoint: str | Path) -> str:
    """A checkpoint's own name: the registry name of its repo id, else the repo id, else the folder name."""
    by_repo = {entry.repo_id: name for name, entry in FAMILY_MODELS.items()}
    if str(checkpoint) in by_repo:
        return by_repo[str(checkpoint)]
    return str(checkpoint) if is_hub_repo_id(checkpoint) else Path(checkpoint).name
