"""What several lang-sam subcommands share: the model, device, dtype and threshold flags, the
Settings read from them (flag, then LANG_SAM_* variable, then default), the generator's options,
and the check that an optional extra is installed."""

from __future__ import annotations

import argparse
import importlib.util
from typing import TYPE_CHECKING

from lang_sam.errors import InvalidOptionError
from lang_sam.registry import DEFAULT_DETECTOR
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD, Thresholds

if TYPE_CHECKING:
    from lang_sam.settings import Settings

SAM_CHECKPOINT_HELP = (
    "a SAM .pth or .safetensors file, a transformers SAM folder or a Hugging Face repo id "
    "($LANG_SAM_SAM_CHECKPOINT; default: found by --sam-type, else downloaded)"
)

# SamAutomaticMaskGenerator's options as `lang-sam everything` flags: flag, type, default, help.
GENERATOR_OPTIONS = [
    ("--points-per-side", int, 32, "grid points along each side of the image"),
    ("--points-per-batch", int, 64, "points decoded at once (memory)"),
    ("--pred-iou-thresh", float, 0.88, "keep masks whose predicted IoU is above this"),
    ("--stability-score-thresh", float, 0.95, "keep masks at least this stable under threshold changes"),
    ("--box-nms-thresh", float, 0.7, "box IoU above which the lesser of two masks is dropped"),
    ("--crop-n-layers", int, 0, "also run on 2^k x 2^k crops for k = 1..N (finds small objects, slower)"),
    ("--min-mask-region-area", int, 0, "fill holes and drop islands smaller than this many pixels"),
]


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """The model flags, the SAM checkpoint and the detector's thresholds: what a text-prompted command reads."""
    add_model_arguments(parser)
    parser.add_argument("--sam-checkpoint", help=SAM_CHECKPOINT_HELP)
    parser.add_argument("--box-threshold", type=float, default=BOX_THRESHOLD, help="minimum box score (default: %(default)s)")
    parser.add_argument("--text-threshold", type=float, default=TEXT_THRESHOLD, help="minimum label score (default: %(default)s)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings every subcommand reads alike: flag, then environment variable, then default."""
    parser.add_argument("--sam-type", help="vit_h, vit_l, vit_b, sam2.1-hiera-tiny|small|base-plus|large, sam-hq-vit-base|large|huge, "
                        "edgetam, sam3 (text prompts, no detector), or NAME for NAME.pth or a transformers folder NAME in the checkpoint "
                        "folder; `lang-sam models` lists them ($LANG_SAM_SAM_TYPE; default vit_h, or what --sam-checkpoint holds)")
    parser.add_argument("--detector", help="a detector name (grounding-dino-*, mm-grounding-dino-*, owlv2-*: `lang-sam models`), "
                        f"a repo id or folder of one of those families, or an IDEA .pth ($LANG_SAM_DETECTOR; default {DEFAULT_DETECTOR})")
    parser.add_argument("--checkpoint-dir", help="folder with Meta's SAM .pth files and your own ($LANG_SAM_CHECKPOINTS)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps ($LANG_SAM_DEVICE; default: best available)")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], help="compute precision ($LANG_SAM_DTYPE; default auto: bfloat16 where the device runs it natively, else float32)")


def settings(args: argparse.Namespace) -> Settings:
    """The models to run, from the flags a subcommand has (the others None: variable, then default)."""
    from lang_sam.settings import Settings

    return Settings.from_environment(**{name: getattr(args, name, None) for name in (
        "sam_type", "sam_checkpoint", "detector", "checkpoint_dir", "device", "dtype", "tile", "tile_overlap")})


def check_thresholds(args: argparse.Namespace) -> None:
    """A subcommand's threshold flags, checked before anything loads (a model load takes seconds to minutes)."""
    if hasattr(args, "box_threshold"):
        Thresholds(args.box_threshold, args.text_threshold, getattr(args, "nms_iou_threshold", None),
                   getattr(args, "max_detections", None))


def generator_options(args: argparse.Namespace) -> dict:
    """SamAutomaticMaskGenerator's keyword arguments from the GENERATOR_OPTIONS flags."""
    return {flag.lstrip("-").replace("-", "_"): getattr(args, flag.lstrip("-").replace("-", "_")) for flag, *_ in GENERATOR_OPTIONS}


def require(module: str, extra: str) -> None:
    """Refuse, naming the pip extra to install, a command whose optional dependency is missing."""
    if importlib.util.find_spec(module) is None:
        raise InvalidOptionError(f"This command needs {module}: pip install 'lang-sam[{extra}]'.")
