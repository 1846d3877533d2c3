"""lang-sam eval: COCO mask and box AP (or SAM's mean IoU on the true boxes) on a COCO dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lang_sam.errors import InvalidOptionError
from lang_sam.interfaces.cli import common
from lang_sam.io.files import check_output_file, write_atomically
from lang_sam.vocabulary import BOX_THRESHOLD

NAME = "eval"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        NAME,
        help="measure COCO mask and box AP on a COCO dataset",
        description="Prompt with the dataset's category names and report COCO mask AP, AP50, AP75 and box AP "
        "(pycocotools), overall and per class, and in --json the precision-recall curves; --sam-only prompts SAM "
        f"with the ground-truth boxes and reports mean mask IoU. Predictions below --box-threshold (default {BOX_THRESHOLD}) "
        "are not scored, which cuts the curve short: --box-threshold 0 --text-threshold 0 measures all of it.",
    )
    evaluate.add_argument("--coco", type=Path, required=True, help="COCO instances JSON")
    evaluate.add_argument("--images", type=Path, required=True, help="folder of the dataset's images")
    evaluate.add_argument("--sam-only", action="store_true", help="SAM on ground-truth boxes: mean mask IoU")
    evaluate.add_argument("--limit", type=int, help="evaluate the first N images only")
    evaluate.add_argument("--json", type=Path, help="also write the metrics to this JSON file")
    evaluate.add_argument("--max-detections", type=int, default=100,
                          help="best detections kept per image, as COCO AP counts them (default: %(default)s)")
    common.add_pipeline_arguments(evaluate)


def run(args: argparse.Namespace) -> int:
    from lang_sam.datasets.evaluation import evaluate_pipeline, evaluate_sam_only, format_table, load_ground_truth
    from lang_sam.families.base import TextSegmenter
    from lang_sam.families.loading import load_segmenter
    from lang_sam.pipeline import LangSAM

    try:
        dataset = json.loads(args.coco.read_text())
    except (OSError, ValueError) as error:
        raise InvalidOptionError(f"Could not read the COCO file {args.coco}: {error}") from None
    if args.json:
        check_output_file(args.json, "--json")
    ground_truth = load_ground_truth(dataset, str(args.coco))
    image_ids = sorted(ground_truth.getImgIds())[: args.limit]
    settings = common.settings(args)
    if args.sam_only:  # the segmenter alone, on the ground-truth boxes: no detector is loaded
        segmenter = load_segmenter(settings.sam_type, settings.sam_checkpoint, settings.device, settings.dtype, settings.checkpoint_dir)
        if isinstance(segmenter, TextSegmenter):
            raise InvalidOptionError(f"--sam-only prompts with boxes; {segmenter.name} takes text: drop --sam-only to "
                                     "measure it with the dataset's class names.")
        metrics = evaluate_sam_only(segmenter, ground_truth, args.images, image_ids)
    else:
        model = LangSAM.from_settings(settings)
        metrics = evaluate_pipeline(
            model, ground_truth, args.images, image_ids, box_threshold=args.box_threshold, text_threshold=args.text_threshold,
            max_detections=args.max_detections,
        )
    print(format_table(metrics))
    if args.json:
        write_atomically(args.json, lambda file: file.write(json.dumps(metrics, indent=1).encode()))
    return 0
