"""lang-sam label: a folder of images labelled into a COCO (and YOLO) dataset, resumable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lang_sam.errors import InvalidOptionError
from lang_sam.interfaces.cli import common, tiled
from lang_sam.io.files import check_output_file, check_output_folder

NAME = "label"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    label = subparsers.add_parser(
        NAME,
        help="label a folder of images into a COCO dataset",
        description="Label every image under IMAGES (a folder, or a URI such as s3://bucket/photos with "
        "--engine ray) with the given classes. Writes OUT/annotations.json (COCO instance segmentation: RLE "
        "masks, scores, image sizes), OUT/report.json (unreadable images) and, with --yolo, an Ultralytics YOLO "
        "segmentation dataset (OUT/dataset.yaml, labels/, train.txt, val.txt, images: a link to IMAGES). Progress is committed in chunks: run the same command again to continue a stopped run. "
        "With --tile, each image is read as a raster of any size (GeoTIFF, ...) window by window and labelled tile by tile.",
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
    label.add_argument("--label-studio", type=Path, metavar="OUT.json",
                       help="also write the detections as Label Studio tasks with predictions (its import format), with "
                       "the regions of --label-studio-config's controls; without one, a brush config of the classes is "
                       "written beside it as OUT.xml")
    label.add_argument("--label-studio-config", type=Path, metavar="CONFIG.xml",
                       help="the Label Studio project's labeling config (its labels, hints or predicted_values name the classes)")
    label.add_argument("--label-studio-prefix", help="what goes before each image's path under IMAGES in the tasks "
                       "(default: /data/local-files/?d=FOLDER/, FOLDER being IMAGES' name, for Label Studio started with "
                       "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=IMAGES' parent)")
    common.add_pipeline_arguments(label)
    label.add_argument("--max-detections", type=int, help="keep only the best N boxes per image (per tile with --tile)")
    tiled.add_tiling_arguments(label, prompts=False, outputs=False)


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
        args.box_threshold, args.text_threshold, args.max_detections, everything, _tiling(args),
    )
    if not job.files:
        raise InvalidOptionError(f"No images found under {args.images}.")
    check_output_folder(args.out)
    if args.yolo:
        check_yolo_output(args.images, args.out, args.val_fraction)
    label_studio_config = _label_studio_config(args, list(classes))
    settings = common.settings(args)
    if args.engine == "ray" or args.ray_address:
        common.require("ray", "ray")
        from lang_sam.datasets.ray_engine import run_ray

        stats = run_ray(job, settings, args.ray_address, args.ray_actors, args.cpus_per_actor, args.gpus_per_actor, args.workers)
    else:
        stats = run_local(job, settings, args.workers)
    report = finish(job, yolo=args.yolo, val_fraction=args.val_fraction)
    if args.label_studio:
        _write_label_studio_tasks(args, job, label_studio_config, settings)
    if stats.images:
        print(f"lang-sam: {stats.images} images in {stats.seconds:.1f} s ({stats.images / stats.seconds:.2f} images/s); "
              f"the model waited {stats.waiting_seconds:.1f} s for input", file=sys.stderr)
    print(f"lang-sam: {report['labelled']} of {report['images']} images labelled, {report['detections']} detections, "
          f"{len(report['unreadable'])} unreadable (listed in {args.out / 'report.json'})", file=sys.stderr)
    return 0


def _tiling(args: argparse.Namespace) -> dict | None:
    """LabelJob's tiling with --tile: classes over local rasters, tile by tile (lang_sam.tiling), else None."""
    tiles = tiled.tiling(args)
    if tiles is None:
        return None
    if args.everything or args.label_studio or args.engine == "ray" or args.ray_address or "://" in args.images:
        raise InvalidOptionError("--tile labels a local folder of rasters with --classes on this machine; it does not "
                                 "take --everything, --label-studio or Ray yet: leave those out, or --tile.")
    bands = tiled.bands(args)
    return {"tile": tiles[0], "overlap": tiles[1], "bands": None if bands is None else list(bands)}


def _label_studio_config(args: argparse.Namespace, classes: list[str]):
    """The ProjectConfig --label-studio writes for, checked against the classes before any work (None without it)."""
    if args.label_studio is None:
        if args.label_studio_config or args.label_studio_prefix:
            raise InvalidOptionError("--label-studio-config and --label-studio-prefix shape the --label-studio OUT.json file: give it too.")
        return None
    common.require("label_studio_sdk", "label-studio")
    from lang_sam.interfaces.label_studio.config import ProjectConfig
    from lang_sam.interfaces.label_studio.imports import check_classes, default_config

    check_output_file(args.label_studio, "--label-studio")
    if args.label_studio_config is not None and not args.label_studio_config.is_file():
        raise InvalidOptionError(f"--label-studio-config {args.label_studio_config} is not a file; give the project's labeling config XML.")
    xml = args.label_studio_config.read_text() if args.label_studio_config else default_config(classes)
    config = ProjectConfig.parse(xml)
    check_classes(config, classes)
    return config


def _write_label_studio_tasks(args: argparse.Namespace, job, config, settings) -> None:
    from lang_sam.datasets.labeling import read_records
    from lang_sam.interfaces.label_studio import model_version
    from lang_sam.interfaces.label_studio.imports import default_config, import_tasks, write_import_file
    from lang_sam.io.files import write_atomically

    prefix = args.label_studio_prefix if args.label_studio_prefix is not None else f"/data/local-files/?d={Path(args.images).name}/"
    write_import_file(args.label_studio, import_tasks(read_records(job)[0], config, prefix, model_version(settings)))
    if args.label_studio_config is None:
        xml = default_config(list(job.classes))
        write_atomically(args.label_studio.with_suffix(".xml"), lambda file: file.write(xml.encode()))
    print(f"lang-sam: Label Studio tasks in {args.label_studio}", file=sys.stderr)
