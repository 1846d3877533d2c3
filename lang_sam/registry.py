"""Every model lang-sam can run, by name: Meta's three official SAM sizes, SAM 2.1, SAM-HQ and SAM 3
(through transformers), SAM checkpoints of your own, and the detectors.

An official size names its architecture, file, download URL and SHA256. Any other ``NAME.pth`` in
the checkpoint folder (``--checkpoint-dir`` / ``$LANG_SAM_CHECKPOINTS``) is a model called NAME,
e.g. a fine-tuned SAM: its architecture is read from its keys when it loads; so is a subfolder
NAME saved by transformers' save_pretrained (its family read from config.json's model_type: sam,
sam2, sam_hq or sam3). The CLI, the app's
dropdown and the server all take their model names from here.

Every entry has a kind, the interface of lang_sam.families.base its adapter sits behind, and
resolve() turns any name, checkpoint file, save_pretrained folder or hub repo id into a
ResolvedModel (name, family, kind, source): the one way every entry point finds what to load.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from lang_sam.errors import InvalidOptionError, ModelLoadError

CHECKPOINT_DIR_VARIABLE = "LANG_SAM_CHECKPOINTS"
TRANSFORMERS_SAM_MODEL_TYPE = "sam"  # config.json's model_type in a folder of transformers' SamModel


# The kinds of model, one per interface of lang_sam.families.base: what an entry is once loaded.
SEGMENTER = "segmenter"  # promptable: points, boxes, a mask (SAM v1, SAM 2.1, SAM-HQ)
TEXT_SEGMENTER = "text_segmenter"  # class names in, masks out, no detector (SAM 3)
DETECTOR = "detector"  # class names in, boxes out (Grounding DINO, MM-Grounding-DINO, OWLv2)
VIDEO_SEGMENTER = "video_segmenter"  # carries prompted objects through a video (SAM 2.1 video, EdgeTAM video)
CONCEPT_TRACKER = "concept_tracker"  # finds and tracks class names through a video (SAM 3 video)
UNIVERSAL = "universal"  # semantic, instance and panoptic maps of a fixed label set (Mask2Former, OneFormer)
KINDS = (SEGMENTER, TEXT_SEGMENTER, DETECTOR, VIDEO_SEGMENTER, CONCEPT_TRACKER, UNIVERSAL)
IMAGE_SEGMENTER_KINDS = (SEGMENTER, TEXT_SEGMENTER)  # what LangSAM segments images with
VIDEO_KINDS = (VIDEO_SEGMENTER, CONCEPT_TRACKER)  # what tracking runs

# config.json's model_type (an entry's family; "sam" also for Meta's files) -> the kinds a model
# of it loads as, its own first: facebook/sam2.1-* repos hold SAM 2.1's video model, whose weights
# hold the image model's; facebook/sam3 holds SAM 3 video, whose detector is the image model.
FAMILY_KINDS: dict[str, tuple[str, ...]] = {
    "sam": (SEGMENTER,),
    "sam2": (SEGMENTER, VIDEO_SEGMENTER),
    "sam2_video": (VIDEO_SEGMENTER, SEGMENTER),
    "sam_hq": (SEGMENTER,),
    "edgetam": (SEGMENTER, VIDEO_SEGMENTER),
    "edgetam_video": (VIDEO_SEGMENTER, SEGMENTER),  # yonigozlan/EdgeTAM-hf: the video model, holding the image model's weights
    "sam3": (TEXT_SEGMENTER, CONCEPT_TRACKER),
    "sam3_video": (CONCEPT_TRACKER, TEXT_SEGMENTER),
    "sam3_lite_text": (TEXT_SEGMENTER,),  # SAM 3 with a small text encoder: no tracker, no video model
    "grounding-dino": (DETECTOR,),
    "mm-grounding-dino": (DETECTOR,),
    "owlv2": (DETECTOR,),
    "mask2former": (UNIVERSAL,),
    "oneformer": (UNIVERSAL,),
}

# a family's name for people (the README's model table)
FAMILY_TITLES = {"sam": "SAM v1", "sam2": "SAM 2.1", "sam_hq": "SAM-HQ", "edgetam": "EdgeTAM", "sam3": "SAM 3",
                "sam3_lite_text": "SAM 3 LiteText"}


class _Entry:
    """What every registry entry has: a family (config.json's model_type), hence a kind (the
    family's own, FAMILY_KINDS), and a source for its adapter (None: the adapter looks the name up)."""

    family: str

    @property
    def kind(self) -> str:
        return FAMILY_KINDS[self.family][0]

    @property
    def source(self) -> str | None:
        return None


META_DECODER_LAYER_NORM_EPS = 1e-5  # Meta's two-way transformer: nn.LayerNorm's default


@dataclass(frozen=True)
class SamArchitecture:
    """The image-encoder settings that tell SAM's sizes apart; everything else is shared, except
    the eps of the mask decoder's two-way transformer norms (norm1-4 of its attention blocks):
    Meta's checkpoints use 1e-5, transformers' SamConfig() and the facebook/sam-vit-* configs 1e-6.
    The eps is not compared: a vit_b is a vit_b whatever its eps (official_sam_name, size checks)."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    decoder_layer_norm_eps: float = field(default=META_DECODER_LAYER_NORM_EPS, compare=False)


@dataclass(frozen=True)
class OfficialSam(_Entry):
    """One of Meta's checkpoints: its architecture, file name (as users already have it), URL, hash,
    and published parameter count."""

    family: ClassVar[str] = TRANSFORMERS_SAM_MODEL_TYPE
    name: str
    architecture: SamArchitecture
    file_name: str
    url: str
    sha256: str
    parameters: int
    licence: str = "Apache-2.0"


_DOWNLOADS = "https://dl.fbaipublicfiles.com/segment_anything"

SAM_MODELS: dict[str, OfficialSam] = {
    model.name: model
    for model in (
        OfficialSam(
            "vit_h", SamArchitecture(1280, 32, 16, (7, 15, 23, 31)), "sam_vit_h_4b8939.pth",
            f"{_DOWNLOADS}/sam_vit_h_4b8939.pth", "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            636_000_000,
        ),
        OfficialSam(
            "vit_l", SamArchitecture(1024, 24, 16, (5, 11, 17, 23)), "sam_vit_l_0b3195.pth",
            f"{_DOWNLOADS}/sam_vit_l_0b3195.pth", "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            308_000_000,
        ),
        OfficialSam(
            "vit_b", SamArchitecture(768, 12, 12, (2, 5, 8, 11)), "sam_vit_b_01ec64.pth",
            f"{_DOWNLOADS}/sam_vit_b_01ec64.pth", "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            91_000_000,
        ),
    )
}
DEFAULT_SAM = "vit_h"


@dataclass(frozen=True)
class FamilyModel(_Entry):
    """A segmenter run through transformers: SAM 2.1 and SAM-HQ (promptable, like SAM v1) or SAM 3
    (text concepts, no detector). family: the model_type in its config.json; parameters: the
    published count (``lang-sam models`` counts the real weights once they are cached)."""

    name: str
    family: str
    repo_id: str
    parameters: int
    licence: str
    gated: bool = False

    @property
    def segments_text(self) -> bool:
        return self.kind == TEXT_SEGMENTER

    @property
    def source(self) -> str:
        return self.repo_id


# model_types of the transformers segmenters in config.json beside SAM v1's "sam"
TRANSFORMERS_SEGMENTER_TYPES = tuple(family for family, kinds in FAMILY_KINDS.items()
                                     if family != TRANSFORMERS_SAM_MODEL_TYPE
                                     and {*IMAGE_SEGMENTER_KINDS, *VIDEO_KINDS} & set(kinds))

FAMILY_MODELS: dict[str, FamilyModel] = {
    model.name: model
    for model in (
        FamilyModel("sam2.1-hiera-tiny", "sam2", "facebook/sam2.1-hiera-tiny", 38_900_000, "Apache-2.0"),
        FamilyModel("sam2.1-hiera-small", "sam2", "facebook/sam2.1-hiera-small", 46_000_000, "Apache-2.0"),
        FamilyModel("sam2.1-hiera-base-plus", "sam2", "facebook/sam2.1-hiera-base-plus", 80_800_000, "Apache-2.0"),
        FamilyModel("sam2.1-hiera-large", "sam2", "facebook/sam2.1-hiera-large", 224_400_000, "Apache-2.0"),
        FamilyModel("sam-hq-vit-base", "sam_hq", "syscv-community/sam-hq-vit-base", 95_000_000, "Apache-2.0"),
        FamilyModel("sam-hq-vit-large", "sam_hq", "syscv-community/sam-hq-vit-large", 313_000_000, "Apache-2.0"),
        FamilyModel("sam-hq-vit-huge", "sam_hq", "syscv-community/sam-hq-vit-huge", 641_000_000, "Apache-2.0"),
        # EdgeTAM (Meta, CVPR 2025; github.com/facebookresearch/EdgeTAM): SAM 2 on a RepViT backbone, made
        # for phones; the transformers conversion its documentation loads
        FamilyModel("edgetam", "edgetam", "yonigozlan/EdgeTAM-hf", 13_900_000, "Apache-2.0"),
        FamilyModel("sam3", "sam3", "facebook/sam3", 848_000_000, "SAM License (Meta)", gated=True),
        # SAM3-LiteText (University of Bristol, 2026): SAM 3's image model with a distilled MobileCLIP
        # text encoder (61 M parameters against SAM 3's 353 M); the count is transformers' default
        # Sam3LiteTextConfig's (lang-sam models counts the real weights once cached)
        FamilyModel("sam3-lite-text", "sam3_lite_text", "vil-uob/sam3-litetext-s0", 548_000_000,
                    "SAM License (Meta): SAM 3's weights, see the model card"),
    )
}


# lang-segment-anything v0.2.x's SAM 2.1 names, so its users' code and clients keep working
SAM_ALIASES = {f"sam2.1_hiera_{size}": f"sam2.1-hiera-{size.replace('_', '-')}" for size in ("tiny", "small", "base_plus", "large")}


def canonical_sam_name(name: object) -> object:
    """The registry's own spelling of a SAM name (lang-segment-anything's sam2.1_hiera_small is
    sam2.1-hiera-small); anything else as it is."""
    return SAM_ALIASES.get(name, name) if isinstance(name, str) else name


def family_of_folder(folder: str | Path) -> str | None:
    """config.json's model_type of a transformers folder ("sam", "sam2", "sam_hq", "sam3", ...), or None."""
    try:
        model_type = json.loads((Path(folder) / "config.json").read_text()).get("model_type")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    return model_type if isinstance(model_type, str) else None


def default_sam_type(sam_type: str | None, checkpoint: str | Path | None) -> str | None:
    """The SAM name to look for: sam_type, or vit_h when neither a name nor a checkpoint is given
    (with only a checkpoint, None: the file says what it holds)."""
    return DEFAULT_SAM if sam_type is None and checkpoint is None else sam_type


def checkpoint_dir(folder: str | Path | None = None) -> Path | None:
    """The checkpoint folder: the one given, else $LANG_SAM_CHECKPOINTS, else none."""
    folder = folder or os.environ.get(CHECKPOINT_DIR_VARIABLE)
    return Path(folder).expanduser() if folder else None


def local_sam_checkpoints(folder: str | Path | None = None) -> dict[str, Path]:
    """NAME -> path of each NAME.pth in the checkpoint folder that is not an official file, and of
    each subfolder NAME holding a transformers SAM (config.json with model_type "sam"), sorted."""
    folder = checkpoint_dir(folder)
    if folder is None or not folder.is_dir():
        return {}
    official = {model.file_name for model in SAM_MODELS.values()}
    files = {path.stem: path for path in folder.glob("*.pth") if path.name not in official and path.is_file()}
    types = (TRANSFORMERS_SAM_MODEL_TYPE, *TRANSFORMERS_SEGMENTER_TYPES)
    folders = {path.name: path for path in folder.iterdir() if path.is_dir() and family_of_folder(path) in types}
    return dict(sorted({**folders, **files}.items()))


def sam_names(folder: str | Path | None = None) -> list[str]:
    """Every segmenter name that can be asked for: SAM v1's official sizes first (as users know
    them), then SAM 2.1, SAM-HQ and SAM 3, then the folder's own files and folders."""
    known = [*SAM_MODELS, *FAMILY_MODELS]
    return [*known, *(name for name in local_sam_checkpoints(folder) if name not in known)]


def check_sam_type(sam_type: object, folder: str | Path | None = None) -> str:
    """sam_type in the registry's spelling (canonical_sam_name) when it names a registry entry or
    a NAME.pth (or a transformers folder NAME) in the checkpoint folder, else an InvalidOptionError
    listing the names there are."""
    sam_type = canonical_sam_name(sam_type)
    if not isinstance(sam_type, str) or sam_type not in sam_names(folder):
        raise _unknown_sam(sam_type, folder)
    return sam_type


def _unknown_sam(sam_type: object, folder: str | Path | None) -> InvalidOptionError:
    """The error for a SAM name that is not one: the names there are, and where to put one's own."""
    where = checkpoint_dir(folder)
    own = f" or a NAME.pth of your own in {where}" if where else f" (or put NAME.pth in ${CHECKPOINT_DIR_VARIABLE})"
    return InvalidOptionError(f"Unknown SAM type {sam_type!r}; choose one of {', '.join(sam_names(folder))}{own}.")


@dataclass(frozen=True)
class DetectorEntry(_Entry):
    """A detector by short name: a transformers model on the Hugging Face hub, or (file_name set)
    one of IDEA's original checkpoints in a hub repo, mapped onto transformers' model at load time.
    family: config.json's model_type of the model ("grounding-dino", "mm-grounding-dino", "owlv2"),
    which names the adapter that runs it (lang_sam.families.loading.ADAPTERS)."""

    name: str
    repo_id: str
    family: str
    file_name: str | None = None
    description: str = ""
    parameters: int | None = None  # the published count, rounded (lang-sam models counts cached weights)
    licence: str = "Apache-2.0"


_MM_GDINO = "openmmlab-community/mm_grounding_dino"

DETECTORS: dict[str, DetectorEntry] = {
    entry.name: entry
    for entry in (
        DetectorEntry("grounding-dino-base", "IDEA-Research/grounding-dino-base", "grounding-dino",
                      description="Swin-B, lang-segment-anything v1's", parameters=233_000_000),
        DetectorEntry("grounding-dino-tiny", "IDEA-Research/grounding-dino-tiny", "grounding-dino", description="Swin-T", parameters=172_000_000),
        DetectorEntry("groundingdino-swint-ogc", "ShilongLiu/GroundingDINO", "grounding-dino", "groundingdino_swint_ogc.pth",
                      "IDEA's Swin-T", parameters=172_000_000),
        DetectorEntry("groundingdino-swinb-cogcoor", "ShilongLiu/GroundingDINO", "grounding-dino",
                      "groundingdino_swinb_cogcoor.pth", "IDEA's Swin-B", parameters=233_000_000),
        DetectorEntry("mm-grounding-dino-tiny", f"{_MM_GDINO}_tiny_o365v1_goldg_v3det", "mm-grounding-dino",
                      description="Swin-T; Objects365 v1, GoldG, V3Det", parameters=173_000_000),
        DetectorEntry("mm-grounding-dino-base", f"{_MM_GDINO}_base_o365v1_goldg_v3det", "mm-grounding-dino",
                      description="Swin-B; Objects365 v1, GoldG, V3Det", parameters=233_000_000),
        DetectorEntry("mm-grounding-dino-large", f"{_MM_GDINO}_large_o365v2_oiv6_goldg", "mm-grounding-dino",
                      description="Swin-L; Objects365 v2, OpenImages v6, GoldG", parameters=341_000_000),
        DetectorEntry("owlv2-base-patch16-ensemble", "google/owlv2-base-patch16-ensemble", "owlv2",
                      description="ViT-B/16, weight ensemble of the self-trained and fine-tuned models", parameters=155_000_000),
        DetectorEntry("owlv2-base-patch16", "google/owlv2-base-patch16", "owlv2", description="ViT-B/16, self-trained", parameters=155_000_000),
        DetectorEntry("owlv2-base-patch16-finetuned", "google/owlv2-base-patch16-finetuned", "owlv2",
                      description="ViT-B/16, self-trained then fine-tuned", parameters=155_000_000),
        DetectorEntry("owlv2-large-patch14-ensemble", "google/owlv2-large-patch14-ensemble", "owlv2",
                      description="ViT-L/14, weight ensemble of the self-trained and fine-tuned models", parameters=438_000_000),
        DetectorEntry("owlv2-large-patch14-finetuned", "google/owlv2-large-patch14-finetuned", "owlv2",
                      description="ViT-L/14, self-trained then fine-tuned", parameters=438_000_000),
    )
}
DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-base"


@dataclass(frozen=True)
class UniversalEntry(_Entry):
    """A universal segmentation model (Mask2Former, OneFormer) on the Hugging Face hub: a semantic
    map of its label set names the masks of segment-everything mode."""

    name: str
    repo_id: str
    family: str
    label_set: str
    description: str = ""
    parameters: int | None = None  # the published count, rounded
    licence: str = "see the model card"


UNIVERSAL_MODELS: dict[str, UniversalEntry] = {
    entry.name: entry
    for entry in (
        UniversalEntry("oneformer-ade20k-swin-tiny", "shi-labs/oneformer_ade20k_swin_tiny", "oneformer",
                       "ADE20K (150 classes)", "OneFormer, Swin-T", 50_000_000, "MIT"),
        UniversalEntry("mask2former-swin-tiny-ade-semantic", "facebook/mask2former-swin-tiny-ade-semantic", "mask2former",
                       "ADE20K (150 classes)", "Mask2Former, Swin-T", 47_000_000),
        UniversalEntry("mask2former-swin-tiny-coco-panoptic", "facebook/mask2former-swin-tiny-coco-panoptic", "mask2former",
                       "COCO panoptic (133 classes)", "Mask2Former, Swin-T", 47_000_000),
    )
}
DEFAULT_UNIVERSAL = "mask2former-swin-tiny-ade-semantic"


ENTRIES: dict[str, _Entry] = {**SAM_MODELS, **FAMILY_MODELS, **DETECTORS, **UNIVERSAL_MODELS}  # every entry by name

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_WEIGHTS_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
# the family of a weights file, by the kind it is loaded as: Meta's SAM, or IDEA's Grounding DINO
_FILE_FAMILIES = {SEGMENTER: TRANSFORMERS_SAM_MODEL_TYPE, DETECTOR: "grounding-dino"}


def is_hub_repo_id(checkpoint: str | Path) -> bool:
    """Whether checkpoint names a Hugging Face repo rather than a local file or folder: no such
    path exists, and it reads as "owner/name" without a weights file's suffix."""
    text = str(checkpoint)
    return (
        not Path(text).expanduser().exists() and _REPO_ID.fullmatch(text) is not None
        and not text.endswith(_WEIGHTS_SUFFIXES)
    )


@dataclass(frozen=True)
class ResolvedModel:
    """What a name, file, folder or repo id is, found before anything loads.

    name: what results, the app and the server call it; family: config.json's model_type ("sam"
    for Meta's files too), None where nothing readable says (the adapter's loader then says what is
    wrong); kind: one of KINDS, the interface its adapter sits behind; source: the repo id, folder
    or file to load, None for a registry name its adapter looks up itself (SAM v1's sizes and the
    checkpoint folder's SAMs, detectors, universal models)."""

    name: str
    family: str | None
    kind: str
    source: str | None

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every kind it loads as, its own first (a SAM 2.1 repo also holds its video model)."""
        return FAMILY_KINDS.get(self.family, (self.kind,))


def resolve(name_or_path: object, kinds: Sequence[str] = KINDS,
            checkpoint_dir: str | Path | None = None) -> ResolvedModel:
    """What name_or_path is, as the first of kinds its family loads as: a registry name (lang-
    segment-anything's SAM 2.1 spellings too), a NAME.pth or folder NAME in the checkpoint folder,
    a weights file (Meta's SAM; IDEA's Grounding DINO where only a detector will do), a
    save_pretrained folder (its family read from config.json) or a hub repo id (from the registry
    or the cached config.json; nothing is downloaded). An unknown name is an InvalidOptionError
    listing the names of those kinds; a model that is none of them, a ModelLoadError saying which
    to choose."""
    name = canonical_sam_name(str(name_or_path) if isinstance(name_or_path, Path) else name_or_path)
    if not isinstance(name, str) or not name:
        raise _unknown(name, kinds, checkpoint_dir)
    family, source = _family_and_source(name, kinds, checkpoint_dir)
    return ResolvedModel(_own_name(name), family, _kind(name, family, kinds, checkpoint_dir), source)


def names_of(kinds: Sequence[str], checkpoint_dir: str | Path | None = None) -> list[str]:
    """The registry's names (and the checkpoint folder's SAMs) that load as one of kinds, in order."""
    own = {name: resolve(name, KINDS, checkpoint_dir) for name in local_sam_checkpoints(checkpoint_dir)}
    found = {**{name: entry.family for name, entry in ENTRIES.items()}, **{name: r.family for name, r in own.items()}}
    return [name for name, family in found.items() if set(FAMILY_KINDS.get(family, ())) & set(kinds)]


def _family_and_source(name: str, kinds: Sequence[str], folder: str | Path | None) -> tuple[str | None, str | None]:
    """The family of name (None where nothing says) and the source its adapter loads."""
    if name in ENTRIES:
        return ENTRIES[name].family, ENTRIES[name].source
    own = local_sam_checkpoints(folder).get(name)
    if own is not None:
        family = family_of_folder(own) if own.is_dir() else TRANSFORMERS_SAM_MODEL_TYPE
        return family, None if family == TRANSFORMERS_SAM_MODEL_TYPE else str(own)  # SAM v1 finds its own by name
    path = Path(name).expanduser()
    if path.is_dir():
        return family_of_folder(path), name
    if path.is_file() or name.endswith(_WEIGHTS_SUFFIXES):
        return next((_FILE_FAMILIES[kind] for kind in kinds if kind in _FILE_FAMILIES), None), name
    if is_hub_repo_id(name):
        return _repo_family(name), name
    if "/" in name or os.sep in name:  # a path that is not there: its adapter's loader says so
        return None, name
    raise _unknown(name, kinds, folder)


def _repo_family(repo_id: str) -> str | None:
    """The family of a hub repo: its registry entry's, else its cached config.json's, else None."""
    by_repo = {entry.repo_id: entry.family for entry in ENTRIES.values() if hasattr(entry, "repo_id")}
    if repo_id in by_repo:
        return by_repo[repo_id]
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json")
    return family_of_folder(Path(cached).parent) if isinstance(cached, str) else None


def _own_name(name: str) -> str:
    """What a model is called: its registry name (also when given by its repo id), else the repo
    id, else the file's or folder's name."""
    if name in ENTRIES or is_hub_repo_id(name):
        return next((key for key, entry in FAMILY_MODELS.items() if entry.repo_id == name), name)
    return Path(name).name


def _kind(name: str, family: str | None, kinds: Sequence[str], folder: str | Path | None) -> str:
    """The first of kinds the family loads as; for a family lang-sam does not know (or None), the
    first of kinds, whose adapter says what is wrong with the model."""
    if family not in FAMILY_KINDS:
        return kinds[0]
    served = [kind for kind in FAMILY_KINDS[family] if kind in kinds]
    if not served:
        raise ModelLoadError(
            f"{name} is a {_words([FAMILY_KINDS[family][0]])} ({family!r} model), not a {_words(kinds)}; "
            f"choose one of {', '.join(names_of(kinds, folder))}.")
    return served[0]


def _unknown(name: object, kinds: Sequence[str], folder: str | Path | None) -> InvalidOptionError:
    """The error for a name that is no model: SAM's own message where a segmenter is wanted, else
    the names of those kinds."""
    if SEGMENTER in kinds:
        return _unknown_sam(name, folder)
    return InvalidOptionError(
        f"Unknown {_words(kinds)} {name!r}; choose one of {', '.join(names_of(kinds, folder))}, or give a "
        "folder saved with save_pretrained or a Hugging Face repo id.")


def _words(kinds: Sequence[str]) -> str:
    """Kinds as words for messages: "video segmenter or concept tracker"."""
    return " or ".join(kind.replace("_", " ") for kind in kinds)
