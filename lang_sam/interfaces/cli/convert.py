"""lang-sam convert: SAM weights between Meta's .pth and a transformers folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lang_sam.registry import SAM_MODELS

NAME = "convert"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    convert = subparsers.add_parser(
        NAME,
        help="convert SAM weights between Meta's .pth and a transformers (Hugging Face) folder",
        description="Convert SAM weights from Meta's layout (a .pth or .safetensors state dict) to a folder that "
        "transformers' SamModel.from_pretrained and SamProcessor.from_pretrained load (config.json, "
        "model.safetensors, preprocessor_config.json), or back. The input is checked as lang-sam loads it (every "
        "tensor used, none missing, every shape right; weights read with safetensors or torch.load(weights_only=True)) "
        "and the tensors are copied unchanged. The output is written under a temporary name and renamed into place "
        "whole; an existing output is kept unless --overwrite. Meta's layout has no config: a folder whose "
        "mask_decoder_config.layer_norm_eps is not Meta's 1e-5 (SamConfig's default and the facebook/sam-vit-* "
        "configs say 1e-6) becomes a file that loads with 1e-5, so its logits move slightly (up to ~2e-4 for "
        "1e-6); it is written all the same, with a warning. Meta's files become folders that say 1e-5.",
    )
    convert.add_argument("input", help="Meta's .pth or .safetensors file, a transformers SAM folder, or a Hugging Face "
                         "repo id in the Hugging Face cache (e.g. facebook/sam-vit-base)")
    convert.add_argument("--out", "-o", type=Path, required=True,
                         help="the output: a folder for --to hf, a .pth or .safetensors file for --to meta")
    convert.add_argument("--to", choices=["hf", "meta"], help="the output layout (default: the other one: a file "
                         "becomes a transformers folder, a folder or repo id Meta's layout)")
    convert.add_argument("--sam-type", choices=list(SAM_MODELS), help="the official size the input must hold (checked; default: any)")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output")


def run(args: argparse.Namespace) -> int:
    import warnings

    from lang_sam.segmenter.convert import EpsNotKeptWarning, convert_checkpoint

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EpsNotKeptWarning)
        path = convert_checkpoint(args.input, args.out, to=args.to, sam_type=args.sam_type, overwrite=args.overwrite)
    print(f"lang-sam: wrote {path}", file=sys.stderr)
    for warning in caught:
        if issubclass(warning.category, EpsNotKeptWarning):
            print(f"lang-sam: warning: {warning.message}", file=sys.stderr)
        else:  # not ours: shown as it would have been
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return 0
