"""lang-sam label: a folder of images labelled into a COCO (and YOLO) dataset, resumable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lang_sam.errors import InvalidOptionError
from lang_sam.interfaces.cli import common
from lang_sam.io.files import check_output_folder

NAME = "label"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    label = subparsers.add_parser(
        NAME,
        help="label a folder of images into a COCO dataset",
        description="Label every image under IMAGES (a folder, or a URI such as s3://bucket/photos with "
        "--engine ray) with the given classes. Writes OUT/annotations.json (COCO instance segmentation: RLE "
        "masks, scores, image sizes), OUT/report.json (unreadable images) and, with --yolo, an Ultralytics YOLO "
        "segmentation dataset (OUT/dataset.yaml, labels/, train.txt, val.txt, images: a link to IMAGES). Progress is committed in chunks: run the same command again to continue a stopped run.",
    )
    label.add_argument("images", help="folder of images (or a URI pyarrow reads, with --engine ray)")
    label.add_argument("--classes", "-c", help='classes separated by commas, e.g. "car, wheel" (or --everything)')
    label.add_argument("--everything", action="store_true", help="no classes: every mask of SAM's automatic mask "
                       "generator (the --points-per-side ... options of lang-sam everything), class \"object\", or "
                       "named by --semantic")
    label.add_argument("--semantic", metavar="MODEL", help="with --everything, name the masks by this Mask2Former or OneFormer model")
    for flag, kind, default, text in common.GENERATOR_OPTIONS:
        label.add_argument(flag, type=kind, default=default, help=f"with --everything: {text} (default: %(default)s)")
    label.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    label.add_argument("--yolo", action="store_true", help="also write a YOLO segmentation dataset (OUT/dataset.yaml)")
    label.add_argument("--val-fraction", type=float, default=0.1,
                       help="with --yolo, the share of images listed in val.txt, the rest in train.txt (default: %(default)s)")
    label.add_argument("--chunk-size", type=int, default=16, help="images per committed chunk (default: %(default)s)")
    label.add_argument("--batch-size", type=int, default=4, help="images per detector batch (default: %(default)s)")
    label.add_argument("--workers", type=int, default=2, help="threads that decode and resize images ahead of the models (default: %(default)s)")
    label.add_argument("--engine", choices=["local", "ray"], default="local", help="where to run (default: %(default)s)")
    label.add_argument("--ray-address", help="Ray cluster address (implies --engine ray; default: a local Ray)")
    label.add_argument("--ray-actors", type=int, default=1, help="model actors (default: %(default)s)")
    label.add_argument("--cpus-per-actor", type=float, default=1, help="CPUs per actor (default: %(default)s)")
    label.add_argument("--gpus-per-actor", type=float, default=0, help="GPUs per actor, e.g. 1 (default: %(default)s)")
    common.add_pipeline_arguments(label)
    label.add_argument("--max-detections", type=int, help="keep only the best N boxes per image")


def run(args: argparse.Namespace) -> int:
    try:
        return _label(args)
    except KeyboardInterrupt:
        print(f"lang-sam: interrupted; finished chunks are kept in {args.out}: run the same command "
              "again to resume.", file=sys.stderr)
        return 130


def _label(args: argparse.Namespace) -> int:
    from lang_sam.datasets.labeling import LabelJob, check_yolo_output, finish, list_images, run_local
    from lang_sam.detector.prompts import parse_classes

    everything = None
    if args.everything:
        from lang_sam.everything import OBJECT
        from lang_sam.families.universal import universal_labels
        from lang_sam.segmenter import SamAutomaticMaskGenerator

        if args.classes:
            raise InvalidOptionError("--everything labels every mask it finds: give --classes or --everything, not both.")
        everything = common.generator_options(args)
        SamAutomaticMaskGenerator(None, **everything)  # bad options fail before any work
        classes = tuple(universal_labels(args.semantic)) if args.semantic else (OBJECT,)
        everything["semantic"] = args.semantic
    elif args.classes:
        if args.semantic:
            raise InvalidOptionError("--semantic names the masks of --everything; with --classes the detector names them.")
        classes = tuple(parse_classes(args.classes))
    else:
        raise InvalidOptionError('Name the classes to label (--classes "car, wheel"), or label every mask (--everything).')
    job = LabelJob(
        args.images, tuple(list_images(args.images)), classes, args.out, args.chunk_size, args.batch_size,
        args.box_threshold, args.text_threshold, args.max_detections, everything,
    )
    if not job.files:
        raise InvalidOptionError(f"No images found under {args.images}.")
    check_output_folder(args.out)
    if args.yolo:
        check_yolo_output(args.images, args.out, args.val_fraction)
    settings = common.settings(args)
    if args.engine == "ray" or args.ray_address:
        common.require("ray", "ray")
        from lang_sam.datasets.ray_engine import run_ray

        stats = run_ray(job, settings, args.ray_address, args.ray_actors, args.cpus_per_actor, args.gpus_per_actor, args.workers)
    else:
        stats = run_local(job, settings, args.workers)
    report = finish(job, yolo=args.yolo, val_fraction=args.val_fraction)
    if stats.images:
        print(f"lang-sam: {stats.images} images in {stats.seconds:.1f} s ({stats.images / stats.seconds:.2f} images/s); "
              f"the model waited {stats.waiting_seconds:.1f} s for input", file=sys.stderr)
    print(f"lang-sam: {report['labelled']} of {report['images']} images labelled, {report['detections']} detections, "
          f"{len(report['unreadable'])} unreadable (listed in {args.out / 'report.json'})", file=sys.stderr)
    return 0
