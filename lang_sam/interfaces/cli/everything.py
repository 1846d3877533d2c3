"""lang-sam everything: every mask of SAM's automatic mask generator in images, no prompt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm

from lang_sam.errors import InvalidImageError, InvalidOptionError
from lang_sam.interfaces.cli import common, tiled
from lang_sam.interfaces.cli.image_outputs import plan_outputs, write_outputs
from lang_sam.io.files import remove_leftovers
from lang_sam.registry import UNIVERSAL_MODELS

NAME = "everything"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    everything = subparsers.add_parser(
        NAME,
        help="segment everything in images (SAM's automatic mask generator, no prompt)",
        description="SAM prompted with a grid of points (segment-anything's automatic mask generator and its "
        "defaults). For each image, write NAME.png (every mask in its own colour) and NAME.json (COCO RLE masks "
        "with area, bbox, predicted_iou, point_coords, stability_score, crop_box) into the output folder. No "
        "detector is loaded.",
    )
    everything.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    everything.add_argument("--out", "-o", type=Path, default=Path("lang-sam-everything"), help="output folder (default: %(default)s)")
    common.add_model_arguments(everything)
    everything.add_argument("--sam-checkpoint", help=common.SAM_CHECKPOINT_HELP)
    for flag, kind, default, text in common.GENERATOR_OPTIONS:
        everything.add_argument(flag, type=kind, default=default, help=f"{text} (default: %(default)s)")
    everything.add_argument("--semantic", metavar="MODEL", help="name each mask by a Mask2Former or OneFormer model's "
                            f"semantic map: {', '.join(UNIVERSAL_MODELS)}, a Hugging Face id or a folder")
    everything.add_argument("--skip-existing", action="store_true", help="skip images whose PNG and JSON are already in the output folder")
    tiled.add_tiling_arguments(everything, prompts=False)


def run(args: argparse.Namespace) -> int:
    from lang_sam.devices import resolve_device, resolve_dtype
    from lang_sam.everything import EverythingLabeler, draw_everything, everything_json
    from lang_sam.io.images import load_image
    from lang_sam.segmenter import SamAutomaticMaskGenerator

    options = common.generator_options(args)
    settings = common.settings(args)
    resolve_dtype(settings.dtype, resolve_device(settings.device))  # bad settings fail before any work
    SamAutomaticMaskGenerator(None, **options)  # bad options fail before the model loads
    tiles = tiled.tiling(args)
    if tiles and args.semantic:
        raise InvalidOptionError("--semantic is not taken by tiled runs (--tile) yet.")
    images, outputs = plan_outputs(args)
    if not images:
        return 0 if outputs else 2
    models = EverythingLabeler.from_settings(settings, options, args.semantic)
    print(f"lang-sam: {models.description}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(args.out)
    if tiles:
        from lang_sam.tiling import stream_everything_tiles

        return tiled.run_tiled(args, images, outputs, lambda reader, progress: stream_everything_tiles(
            models.generator, reader, *tiles, progress=progress))
    failures = 0
    for path in images:
        try:
            image = load_image(path)
        except InvalidImageError as error:
            failures += 1
            print(f"lang-sam: skipped {path}: {error}", file=sys.stderr)
            continue
        with tqdm(desc=f"lang-sam everything {path.name}", unit="batch", leave=False) as bar:
            def advance(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            found = models.detections(image, progress=advance)
        payload = {"file": path.name, **everything_json(found)}
        write_outputs(args.out / outputs[path], draw_everything(image, found), payload)
        print(f"lang-sam: {path}: {len(found)} masks", file=sys.stderr)
    print(f"lang-sam: {len(images) - failures} of {len(images)} images written to {args.out}", file=sys.stderr)
    return 1 if failures else 0
