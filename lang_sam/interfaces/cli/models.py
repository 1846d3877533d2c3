"""lang-sam models: every model lang-sam can run, and whether its weights are on this machine."""

from __future__ import annotations

import argparse
import json

NAME = "models"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser(
        NAME,
        help="list every model lang-sam can run",
        description="Every registry entry (SAM v1 first, then SAM 2.1, SAM-HQ, SAM 3, the detectors and the universal "
        "models) and your own files in the checkpoint folder: name (what --sam-type / --detector take), family, kind, "
        "size in parameters (counted from the weights once cached), licence, whether the Hugging Face repo is gated, "
        "and whether the weights are already on this machine. Nothing is downloaded.",
    )
    models.add_argument("--checkpoint-dir", help="folder with SAM files of your own ($LANG_SAM_CHECKPOINTS)")
    models.add_argument("--json", action="store_true", help="JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from lang_sam.interfaces.catalog import format_rows, model_rows, rows_as_json

    rows = model_rows(args.checkpoint_dir)
    print(json.dumps(rows_as_json(rows), indent=2) if args.json else format_rows(rows))
    return 0
