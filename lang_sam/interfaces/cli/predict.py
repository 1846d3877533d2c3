"""lang-sam predict: segment what a text prompt (or clicks and boxes) names in images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm

from lang_sam.errors import InvalidImageError, InvalidOptionError
from lang_sam.interfaces.cli import common, tiled
from lang_sam.interfaces.cli.image_outputs import plan_outputs, write_outputs
from lang_sam.io.files import remove_leftovers

NAME = "predict"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    predict = subparsers.add_parser(
        NAME,
        help="segment what a text prompt names in images",
        description="For each image, write a labelled drawing (NAME.png) and detections with COCO RLE masks "
        "(NAME.json) into the output folder, each through a temporary file renamed into place. Unreadable "
        "images are reported and skipped; the exit code is 1 when any image failed. Outputs never overwrite "
        "inputs, and --skip-existing makes a rerun continue where a stopped run ended.",
    )
    predict.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    predict.add_argument("--prompt", "-p", help='classes separated by commas, e.g. "car, wheel" (or give --points / --boxes)')
    predict.add_argument("--points", help='clicks in pixels, "x,y;x,y": one object, refining the detected one they fall in')
    predict.add_argument("--point-labels", help='one per point, "1,0": 1 object, 0 background (default: all 1)')
    predict.add_argument("--boxes", help='boxes in pixels, "x1,y1,x2,y2;x1,y1,x2,y2": each an object')
    predict.add_argument("--exemplar", action="append", metavar="X1,Y1,X2,Y2",
                         help="SAM 3: a box around an example of what to find (repeat for more); every instance is found")
    predict.add_argument("--negative-exemplar", action="append", metavar="X1,Y1,X2,Y2",
                         help="SAM 3: a box around a counter-example, what is not to be found (repeat for more)")
    predict.add_argument("--out", "-o", type=Path, default=Path("lang-sam-output"), help="output folder (default: %(default)s)")
    common.add_pipeline_arguments(predict)
    predict.add_argument("--max-detections", type=int, help="keep only the best N boxes per image")
    predict.add_argument("--nms-iou-threshold", type=float, help="drop boxes of a class overlapping a better one of that class more than this IoU")
    predict.add_argument("--multimask", action="store_true", help="three SAM masks per box, keep the one with the highest predicted IoU")
    predict.add_argument("--verbose", "-v", action="store_true", help="say which models run, on which device, in which dtype")
    predict.add_argument("--skip-existing", action="store_true", help="skip images whose PNG and JSON are already in the output folder (resume a run)")
    tiled.add_tiling_arguments(predict, prompts=True)


def run(args: argparse.Namespace) -> int:
    from lang_sam.detector.prompts import parse_classes
    from lang_sam.drawing import draw_image
    from lang_sam.io.images import load_image
    from lang_sam.pipeline import LangSAM

    user_prompts = _user_prompts(args)
    if args.prompt is None and not user_prompts:
        raise InvalidOptionError('Say what to segment: --prompt "car, wheel", or --points / --boxes (or --exemplar with SAM 3).')
    if args.prompt is not None:
        parse_classes(args.prompt)  # a prompt that names nothing fails before the models load
    tiles = tiled.tiling(args)
    if tiles and "points" in user_prompts:
        raise InvalidOptionError("--points are not taken by tiled runs (--tile): give --boxes.")
    images, outputs = plan_outputs(args)
    if not images:
        return 0 if outputs else 2
    model = LangSAM.from_settings(common.settings(args))
    if args.verbose:
        print(f"lang-sam: {model.describe()}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)  # only once the models loaded: a failed start leaves nothing
    remove_leftovers(args.out)
    if tiles:
        return tiled.run_tiled(args, images, outputs, tiled.text_segmenter(args, model, *tiles, user_prompts.get("boxes")))
    failures = 0
    for path in tqdm(images, desc="lang-sam", unit="image", disable=len(images) < 2):
        try:
            image = load_image(path)
            result = model.predict(
                image, args.prompt, box_threshold=args.box_threshold, text_threshold=args.text_threshold,
                max_detections=args.max_detections, nms_iou_threshold=args.nms_iou_threshold,
                multimask_output=True if args.multimask else None, **user_prompts,
            )
            drawing = draw_image(image, result)
        except InvalidImageError as error:  # other errors (prompt, options) concern every image: stop
            failures += 1
            tqdm.write(f"lang-sam: skipped {path}: {error}", file=sys.stderr)
            continue
        write_outputs(args.out / outputs[path], drawing, {"file": path.name, **result.to_json()})
    print(f"lang-sam: {len(images) - failures} of {len(images)} images written to {args.out}", file=sys.stderr)
    return 1 if failures else 0


def _user_prompts(args: argparse.Namespace) -> dict:
    """--points, --point-labels, --boxes, --exemplar and --negative-exemplar as LangSAM.predict's
    points, point_labels, boxes, exemplars and negative_exemplars."""
    from lang_sam.io.prompt_text import parse_coordinates, parse_point_labels

    prompts: dict = {}
    if args.points:
        prompts["points"] = parse_coordinates(args.points, 2, "--points")
    if args.point_labels:
        if not args.points:
            raise InvalidOptionError("--point-labels needs --points.")
        prompts["point_labels"] = parse_point_labels(args.point_labels, "--point-labels")
    if args.boxes:
        prompts["boxes"] = parse_coordinates(args.boxes, 4, "--boxes")
    for flag, name in (("--exemplar", "exemplars"), ("--negative-exemplar", "negative_exemplars")):
        given = getattr(args, name.removesuffix("s"))
        if given:
            prompts[name] = [box for text in given for box in parse_coordinates(text, 4, flag)]
    return prompts
