"""The lang-sam command line: one module per subcommand, each with add_parser(subparsers) and
run(args) -> int; main parses, checks the thresholds and runs the named one.

Nothing imported here loads torch: main() starts at once, and a Ctrl+C while a command imports
the models' code (seconds) is an "interrupted" line, not a traceback. The subcommands keep their
heavy imports inside run.
"""

from __future__ import annotations

import argparse
import sys

from lang_sam.errors import LangSAMError
from lang_sam.interfaces.cli import (
    app,
    common,
    convert,
    evaluate,
    everything,
    export_onnx,
    finetune,
    label,
    label_studio,
    models,
    predict,
    serve,
    track,
)

# The subcommands in the order `lang-sam --help` lists them.
COMMANDS = (predict, everything, export_onnx, convert, app, serve, label_studio, label, evaluate, track, models, finetune)
RUNS = {command.NAME: command.run for command in COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand (args.command: the subcommand's name)."""
    parser = argparse.ArgumentParser(prog="lang-sam", description="Text-prompted segmentation: Grounding DINO + SAM.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `lang-sam ARGV`; the exit code: 0 done, 1 some images failed, 2 bad input, 130 interrupted."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # what a command does not say itself (label and track do)
        print("lang-sam: interrupted.", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        common.check_thresholds(args)
        return RUNS[args.command](args)
    except LangSAMError as error:
        print(f"lang-sam: {error}", file=sys.stderr)
        return 2
