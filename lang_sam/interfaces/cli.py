"""The lang-sam command line."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from lang_sam.errors import InvalidImageError, InvalidOptionError, LangSAMError
from lang_sam.interfaces.limits import Limits
from lang_sam.io.files import check_output_file, check_output_folder, remove_leftovers, write_atomically
from lang_sam.io.images import find_images
from lang_sam.registry import DEFAULT_DETECTOR, SAM_MODELS, UNIVERSAL_MODELS
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD, Thresholds

# Nothing imported above loads torch: main() starts at once, and a Ctrl+C while a command imports
# the models' code (seconds) is an "interrupted" line, not a traceback. Keep heavy imports inside
# the commands.

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lang-sam", description="Text-prompted segmentation: Grounding DINO + SAM.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
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
    predict.add_argument("--out", "-o", type=Path, default=Path("lang-sam-output"), help="output folder (default: %(default)s)")
    _add_pipeline_arguments(predict)
    predict.add_argument("--max-detections", type=int, help="keep only the best N boxes per image")
    predict.add_argument("--nms-iou-threshold", type=float, help="drop boxes of a class overlapping a better one of that class more than this IoU")
    predict.add_argument("--multimask", action="store_true", help="three SAM masks per box, keep the one with the highest predicted IoU")
    predict.add_argument("--verbose", "-v", action="store_true", help="say which models run, on which device, in which dtype")
    predict.add_argument("--skip-existing", action="store_true", help="skip images whose PNG and JSON are already in the output folder (resume a run)")

    everything = commands.add_parser(
        "everything",
        help="segment everything in images (SAM's automatic mask generator, no prompt)",
        description="SAM prompted with a grid of points (segment-anything's automatic mask generator and its "
        "defaults). For each image, write NAME.png (every mask in its own colour) and NAME.json (COCO RLE masks "
        "with area, bbox, predicted_iou, point_coords, stability_score, crop_box) into the output folder. No "
        "detector is loaded.",
    )
    everything.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    everything.add_argument("--out", "-o", type=Path, default=Path("lang-sam-everything"), help="output folder (default: %(default)s)")
    _add_model_arguments(everything)
    everything.add_argument("--sam-checkpoint", help=SAM_CHECKPOINT_HELP)
    for flag, kind, default, text in GENERATOR_OPTIONS:
        everything.add_argument(flag, type=kind, default=default, help=f"{text} (default: %(default)s)")
    everything.add_argument("--semantic", metavar="MODEL", help="name each mask by a Mask2Former or OneFormer model's "
                            f"semantic map: {', '.join(UNIVERSAL_MODELS)}, a Hugging Face id or a folder")
    everything.add_argument("--skip-existing", action="store_true", help="skip images whose PNG and JSON are already in the output folder")

    export = commands.add_parser(
        "export-onnx",
        help="export SAM's prompt decoder (and encoder) to ONNX",
        description="Write OUT/decoder.onnx with segment-anything's exported interface (inputs image_embeddings, "
        "point_coords, point_labels, mask_input, has_mask_input, orig_im_size; outputs masks, iou_predictions, "
        "low_res_masks; any number of points), so code written for Meta's exported decoder runs on it. Needs "
        "pip install 'lang-sam[onnx]'.",
    )
    export.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    export.add_argument("--sam-type", help="vit_h, vit_l, vit_b, or NAME for NAME.pth or a transformers SAM folder NAME in the "
                        "checkpoint folder ($LANG_SAM_SAM_TYPE; default vit_h, or what --checkpoint holds)")
    export.add_argument("--checkpoint", help="a SAM .pth or .safetensors file, a transformers SAM folder or a Hugging Face repo id "
                        "($LANG_SAM_SAM_CHECKPOINT)")
    export.add_argument("--checkpoint-dir", help="folder with Meta's SAM .pth files and your own ($LANG_SAM_CHECKPOINTS)")
    export.add_argument("--quantize", action="store_true", help="also write decoder_quantized.onnx (int8 dynamic quantization)")
    export.add_argument("--encoder", action="store_true", help="also write encoder.onnx (resized (h, w, 3) uint8 RGB in, embedding out)")
    export.add_argument("--return-all-masks", action="store_true", help="output all four masks instead of the best one")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset, 14 to 23 (default: %(default)s)")

    convert = commands.add_parser(
        "convert",
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

    app = commands.add_parser(
        "app",
        help="open the Gradio web app",
        description="Serve the Gradio app (also: python app.py). Models load on first use, once per SAM size. "
        "Needs the app extra: pip install 'lang-sam[app]'.",
    )
    app.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    app.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    app.add_argument("--share", action="store_true", help="also open a public gradio.live link (or $GRADIO_SHARE=True)")
    _add_model_arguments(app)
    serve = commands.add_parser(
        "serve",
        help="run the LitServe API server",
        description="Serve POST /predict (multipart or JSON with base64 image; JSON or PNG answers), /embed + "
        "/decode (encode an image once, then clicks and boxes on it by image_id) and /health "
        "with LitServe, batching requests across clients. Needs the serve extra: pip install 'lang-sam[serve]'.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument("--workers-per-device", type=int, default=1, help="model workers per device (default: %(default)s)")
    serve.add_argument("--max-batch-size", type=int, default=4, help="requests batched together (default: %(default)s)")
    serve.add_argument("--batch-timeout", type=float, default=0.05, help="seconds to wait to fill a batch (default: %(default)s)")
    serve.add_argument("--timeout", type=float, default=120.0, help="seconds a request may wait for a worker (default: %(default)s)")
    serve.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body (default: %(default)s)")
    serve.add_argument("--max-image-pixels", type=int, default=40_000_000, help="largest image (default: %(default)s)")
    serve.add_argument("--max-video-mb", type=float, default=500.0, help="largest /track upload (default: %(default)s)")
    _add_request_limits(serve)
    serve.add_argument("--with-app", action="store_true", help="also serve the Gradio app at /app")
    serve.add_argument("--sam-types", help="comma-separated SAM names requests may ask for (default: --sam-type alone)")
    serve.add_argument("--detectors", help="comma-separated detectors requests may name in a detector field, beside --detector "
                       "(names from `lang-sam models`, repo ids or folders; default: --detector alone)")
    serve.add_argument("--semantic-models", help="comma-separated universal segmentation models that mode=everything's "
                       "semantic field may name to label the masks (names from `lang-sam models`, repo ids or folders; "
                       "default: none)")
    serve.add_argument("--preload", action="store_true", help="load every SAM of --sam-types at start, not on first use")
    serve.add_argument("--embeddings-kept", type=int, default=32,
                       help="image embeddings /embed keeps for /decode, 4 MB each (default: %(default)s)")
    _add_model_arguments(serve)

    label = commands.add_parser(
        "label",
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
    for flag, kind, default, text in GENERATOR_OPTIONS:
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
    _add_pipeline_arguments(label)
    label.add_argument("--max-detections", type=int, help="keep only the best N boxes per image")

    evaluate = commands.add_parser(
        "eval",
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
    _add_pipeline_arguments(evaluate)

    tracking = commands.add_parser(
        "track",
        help="track what a text prompt names through a video",
        description="Detect the prompt's classes on the first frame and every --redetect-every frames, follow each "
        "object with SAM 2.1 video in between, and write OUT/NAME.mp4 (masks, boxes and \"#id label\" drawn in each "
        "track's colour, the input's frame times kept) and OUT/NAME.jsonl (a line per frame: frame index, time, and "
        "per object id, label, score, box, COCO RLE mask), each through a temporary file renamed at the end. A "
        "track unseen for --max-lost frames ends; an object seen again later gets a new id. VIDEO: a video file or "
        "a folder of frames. With SAM 3 (--sam-type sam3, or a Sam3VideoModel folder as --sam-checkpoint) no detector "
        "runs: SAM 3 video detects the classes on every frame and keeps its own ids, --box-threshold is the score an "
        "object needs to be written, an object unwritten for --max-lost frames ends, and --redetect-every, "
        "--iou-threshold and --text-threshold do not apply. Needs the video extra: pip install 'lang-sam[video]'.",
    )
    tracking.add_argument("video", type=Path, help="video file (MP4, MOV, WebM, ...) or folder of frame images")
    tracking.add_argument("--prompt", "-p", required=True, help='classes separated by commas, e.g. "car, person"')
    tracking.add_argument("--out", "-o", type=Path, default=Path("lang-sam-track"), help="output folder (default: %(default)s)")
    tracking.add_argument("--redetect-every", type=int, default=10, help="run the detector every N frames read (default: %(default)s)")
    tracking.add_argument("--max-lost", type=int, default=30, help="frames a track may go unseen before it ends (default: %(default)s)")
    tracking.add_argument("--iou-threshold", type=float, default=0.5, help="mask IoU at which a detection continues a track (default: %(default)s)")
    tracking.add_argument("--start", type=float, default=0.0, help="first second to read (default: %(default)s)")
    tracking.add_argument("--end", type=float, help="stop at this second (default: the end)")
    tracking.add_argument("--stride", type=int, default=1, help="read every N-th frame (default: %(default)s)")
    tracking.add_argument("--fps", type=float, help="frame rate of a folder of frames (default: 30)")
    _add_pipeline_arguments(tracking)

    models = commands.add_parser(
        "models",
        help="list every model lang-sam can run",
        description="Every registry entry (SAM v1 first, then SAM 2.1, SAM-HQ, SAM 3, the detectors and the universal "
        "models) and your own files in the checkpoint folder: name (what --sam-type / --detector take), family, kind, "
        "size in parameters (counted from the weights once cached), licence, whether the Hugging Face repo is gated, "
        "and whether the weights are already on this machine. Nothing is downloaded.",
    )
    models.add_argument("--checkpoint-dir", help="folder with SAM files of your own ($LANG_SAM_CHECKPOINTS)")
    models.add_argument("--json", action="store_true", help="JSON instead of a table")

    finetune = commands.add_parser(
        "finetune",
        help="fine-tune SAM's mask decoder on a COCO dataset (Lightning)",
        description="Train SAM's mask decoder on a COCO instances dataset with lightning.Trainer: the image encoder "
        "frozen (each image encoded once, its embedding cached for later runs), prompts from each object's box "
        "jittered outward, SAM's loss (focal 20 : dice 1 : IoU MSE 1), validation mIoU of box-prompted masks every "
        "epoch, the best model written as OUT/model.pth (Meta's format) and OUT/hf/ (transformers' format). Needs "
        "the train extra: pip install 'lang-sam[train]'.",
    )
    finetune.add_argument("--coco", type=Path, required=True, help="COCO instances JSON with masks (polygons or RLE)")
    finetune.add_argument("--images", type=Path, required=True, help="folder of the dataset's images")
    finetune.add_argument("--out", "-o", type=Path, required=True, help="run folder (checkpoints, logs, model.pth, hf/)")
    finetune.add_argument("--sam-type", help="the SAM to start from ($LANG_SAM_SAM_TYPE; default vit_h, or what --sam-checkpoint holds)")
    finetune.add_argument("--sam-checkpoint", help=SAM_CHECKPOINT_HELP)
    finetune.add_argument("--checkpoint-dir", help="folder with SAM files ($LANG_SAM_CHECKPOINTS)")
    finetune.add_argument("--epochs", type=int, default=10, help="epochs (default: %(default)s)")
    finetune.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (default: no limit)")
    finetune.add_argument("--val-fraction", type=float, default=0.1, help="share of images held out to validate (default: %(default)s)")
    finetune.add_argument("--batch-size", type=int, default=8, help="objects per step and device (default: %(default)s)")
    finetune.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default: %(default)s)")
    finetune.add_argument("--box-jitter", type=float, default=20.0, help="each box side moves outward by up to this many pixels (default: %(default)s)")
    finetune.add_argument("--points-per-box", type=int, default=0, help="also prompt with N points sampled inside each mask (default: %(default)s)")
    finetune.add_argument("--train-prompt-encoder", action="store_true", help="train the prompt encoder too (default: frozen)")
    finetune.add_argument("--accelerator", default="auto", help="cpu, gpu, mps or auto (default: %(default)s)")
    finetune.add_argument("--devices", default="1", help="devices (processes) to train on, or auto (default: %(default)s)")
    finetune.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default: %(default)s)")
    finetune.add_argument("--precision", default="32-true", help="Lightning precision, e.g. bf16-mixed (default: %(default)s)")
    finetune.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    finetune.add_argument("--seed", type=int, default=0, help="seed of shuffling, jitter and points (default: %(default)s)")
    finetune.add_argument("--cache-dir", type=Path, help="where embeddings are cached (default: $LANG_SAM_CACHE or ~/.cache/lang-sam)")
    finetune.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("--sam-checkpoint", help=SAM_CHECKPOINT_HELP)
    parser.add_argument("--box-threshold", type=float, default=BOX_THRESHOLD, help="minimum box score (default: %(default)s)")
    parser.add_argument("--text-threshold", type=float, default=TEXT_THRESHOLD, help="minimum label score (default: %(default)s)")


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings every subcommand reads alike: flag, then environment variable, then default."""
    parser.add_argument("--sam-type", help="vit_h, vit_l, vit_b, sam2.1-hiera-tiny|small|base-plus|large, sam-hq-vit-base|large|huge, "
                        "sam3 (text prompts, no detector), or NAME for NAME.pth or a transformers folder NAME in the checkpoint "
                        "folder; `lang-sam models` lists them ($LANG_SAM_SAM_TYPE; default vit_h, or what --sam-checkpoint holds)")
    parser.add_argument("--detector", help="a detector name (grounding-dino-*, mm-grounding-dino-*, owlv2-*: `lang-sam models`), "
                        f"a repo id or folder of one of those families, or an IDEA .pth ($LANG_SAM_DETECTOR; default {DEFAULT_DETECTOR})")
    parser.add_argument("--checkpoint-dir", help="folder with Meta's SAM .pth files and your own ($LANG_SAM_CHECKPOINTS)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps ($LANG_SAM_DEVICE; default: best available)")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], help="compute precision ($LANG_SAM_DTYPE; default auto: bfloat16 where the device runs it natively, else float32)")


def _settings(args: argparse.Namespace):
    from lang_sam.settings import Settings

    return Settings.from_environment(**{name: getattr(args, name, None) for name in (
        "sam_type", "sam_checkpoint", "detector", "checkpoint_dir", "device", "dtype")})


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # what a command does not say itself (label and track do)
        print("lang-sam: interrupted.", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_thresholds(args)
        if args.command == "app":
            _require("gradio", "app")
            from lang_sam.interfaces.app import launch

            launch(_settings(args), args.host, args.port, args.share)
            return 0
        if args.command == "serve":
            _require("litserve", "serve")
            from lang_sam.interfaces.server import serve

            serve(
                _settings(args), _limits(args), args.host, args.port, args.max_batch_size, args.batch_timeout,
                args.workers_per_device, args.timeout, args.with_app,
                sam_types=_names(args.sam_types), preload=args.preload, embeddings_kept=args.embeddings_kept,
                detectors=_names(args.detectors), semantic_models=_names(args.semantic_models),
            )
            return 0
        if args.command == "label":
            try:
                return _label(args)
            except KeyboardInterrupt:
                print(f"lang-sam: interrupted; finished chunks are kept in {args.out}: run the same command "
                      "again to resume.", file=sys.stderr)
                return 130
        if args.command == "eval":
            return _evaluate(args)
        if args.command == "everything":
            return _everything(args)
        if args.command == "export-onnx":
            return _export_onnx(args)
        if args.command == "convert":
            return _convert(args)
        if args.command == "finetune":
            return _finetune(args)
        if args.command == "models":
            return _models(args)
        if args.command == "track":
            return _track(args)
        return _predict(args)
    except LangSAMError as error:
        print(f"lang-sam: {error}", file=sys.stderr)
        return 2


def _check_thresholds(args: argparse.Namespace) -> None:
    """A subcommand's threshold flags, checked before anything loads (a model load takes seconds to minutes)."""
    if hasattr(args, "box_threshold"):
        Thresholds(args.box_threshold, args.text_threshold, getattr(args, "nms_iou_threshold", None),
                   getattr(args, "max_detections", None))


def _add_request_limits(serve: argparse.ArgumentParser) -> None:
    """What one request may ask of the server (lang_sam.interfaces.limits.Limits, whose defaults
    these are): a request over one gets a 422 naming its flag."""
    defaults = Limits()
    for flag, helped in (("--max-points", "clicks in one /predict or /decode request"),
                         ("--max-boxes", "boxes in one /predict or /decode request"),
                         ("--max-points-per-side", "mode=everything's largest points_per_side"),
                         ("--max-crop-layers", "mode=everything's largest crop_n_layers"),
                         ("--max-everything-points", ("points one mode=everything request decodes: points_per_side "
                                                      "squared times its crops (1, 5 or 21 for crop_n_layers 0, 1, 2)")),
                         ("--max-track-frames", "frames one /track request follows, after start, end and stride")):
        name = flag[2:].replace("-", "_")
        serve.add_argument(flag, type=int, default=getattr(defaults, name), help=f"{helped} (default: %(default)s)")


def _limits(args: argparse.Namespace) -> Limits:
    """serve's Limits from its flags, and its other numbers checked, before any model loads (and
    before LitServe, whose own checks end in a traceback): a flag out of range is the
    InvalidOptionError naming it."""
    for flag, value, least in (("--max-batch-size", args.max_batch_size, 1), ("--workers-per-device", args.workers_per_device, 1),
                               ("--embeddings-kept", args.embeddings_kept, 1), ("--batch-timeout", args.batch_timeout, 0)):
        if not value >= least:  # also NaN
            raise InvalidOptionError(f"{flag} must be >= {least}, got {value}.")
    for flag, value in (("--timeout", args.timeout), ("--max-upload-mb", args.max_upload_mb), ("--max-video-mb", args.max_video_mb)):
        if not 0 < value < float("inf"):
            raise InvalidOptionError(f"{flag} must be a number > 0, got {value}.")
    return Limits(max(1, int(args.max_upload_mb * 2**20)), args.max_image_pixels, max(1, int(args.max_video_mb * 2**20)),
                  args.max_points, args.max_boxes, args.max_points_per_side, args.max_crop_layers,
                  args.max_everything_points, args.max_track_frames)


def _names(text: str | None) -> list[str]:
    """A comma-separated list of names, blanks left out."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def _require(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise InvalidOptionError(f"This command needs {module}: pip install 'lang-sam[{extra}]'.")


def _predict(args: argparse.Namespace) -> int:
    from lang_sam.detector.prompts import parse_classes
    from lang_sam.drawing import draw_image
    from lang_sam.io.images import load_image
    from lang_sam.pipeline import LangSAM

    user_prompts = _user_prompts(args)
    if args.prompt is None and not user_prompts:
        raise InvalidOptionError('Say what to segment: --prompt "car, wheel", or --points / --boxes.')
    if args.prompt is not None:
        parse_classes(args.prompt)  # a prompt that names nothing fails before the models load
    images, outputs = _plan_outputs(args)
    if not images:
        return 0 if outputs else 2
    model = LangSAM.from_settings(_settings(args))
    if args.verbose:
        print(f"lang-sam: {model.describe()}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)  # only once the models loaded: a failed start leaves nothing
    remove_leftovers(args.out)
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
        _write_outputs(args.out / outputs[path], drawing, {"file": path.name, **result.to_json()})
    print(f"lang-sam: {len(images) - failures} of {len(images)} images written to {args.out}", file=sys.stderr)
    return 1 if failures else 0


def _user_prompts(args: argparse.Namespace) -> dict:
    """--points, --point-labels and --boxes as LangSAM.predict's points, point_labels, boxes."""
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
    return prompts


def _plan_outputs(args: argparse.Namespace) -> tuple[list[Path], dict[Path, str]]:
    """The images to process and the output stem of every image found; checks the output folder
    first. No images to process: ([], {}) when none were found (reported), ([], stems) when all
    are done already (--skip-existing)."""
    images = _collect_images(args.inputs, args.out)
    if not images:
        print("lang-sam: no images found in the given paths.", file=sys.stderr)
        return [], {}
    outputs = dict(zip(images, _output_names(images)))
    overwritten = sorted(
        str(path) for path in images for stem in [outputs[path]] for suffix in (".png", ".json")
        if (args.out / f"{stem}{suffix}").resolve() == path.resolve()
    )
    if overwritten:
        raise InvalidOptionError(f"Writing into {args.out} would overwrite the input {overwritten[0]}; choose another --out.")
    check_output_folder(args.out)
    if args.skip_existing:
        done = [path for path in images if all((args.out / f"{outputs[path]}{s}").is_file() for s in (".png", ".json"))]
        if done:
            print(f"lang-sam: {len(done)} of {len(images)} images already have outputs; skipped.", file=sys.stderr)
        images = [path for path in images if path not in set(done)]
    return images, outputs


def _write_outputs(stem: Path, drawing, payload: dict) -> None:
    """STEM.png, then STEM.json (written last: its presence marks the image done), each atomically."""
    write_atomically(stem.with_name(f"{stem.name}.png"), lambda file: Image.fromarray(drawing).save(file, format="PNG"))
    write_atomically(stem.with_name(f"{stem.name}.json"), lambda file: file.write(json.dumps(payload, indent=1).encode()))


def _track(args: argparse.Namespace) -> int:
    _require("av", "video")
    from functools import partial

    from lang_sam.detector.prompts import parse_classes
    from lang_sam.devices import resolve_device, resolve_dtype
    from lang_sam.families.detectors import load_detector
    from lang_sam.families.loading import load_video_segmenter
    from lang_sam.video.frames import VideoFrames
    from lang_sam.video.outputs import write_tracking
    from lang_sam.video.tracker import check_track_options, track

    classes = parse_classes(args.prompt)  # a prompt that names nothing fails before anything loads
    check_track_options(redetect_every=args.redetect_every, max_lost=args.max_lost, iou_threshold=args.iou_threshold,
                        box_threshold=args.box_threshold, text_threshold=args.text_threshold)
    frames = VideoFrames(args.video, start=args.start, end=args.end, stride=args.stride, fps=args.fps)
    check_output_folder(args.out)
    settings = _settings(args)
    resolve_dtype(settings.dtype, resolve_device(settings.device))
    segmenter = load_video_segmenter(settings.sam_type, settings.sam_checkpoint, settings.device, settings.dtype,
                                     settings.checkpoint_dir)
    detector = partial(load_detector, settings.detector, settings.device, settings.dtype)  # loaded unless SAM 3 video
    results = track(frames, classes, detector, segmenter, redetect_every=args.redetect_every, max_lost=args.max_lost,
                    iou_threshold=args.iou_threshold, box_threshold=args.box_threshold, text_threshold=args.text_threshold)
    bar = tqdm(desc=f"lang-sam track {frames.name}", unit="frame")
    try:
        summary = write_tracking(results, frames, args.out, on_frame=lambda _: bar.update())
    except KeyboardInterrupt:
        print(f"lang-sam: interrupted; nothing was written to {args.out}.", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print(f"lang-sam: {summary.frames} frames, {len(summary.tracks)} tracks; wrote {summary.video} and {summary.lines}",
          file=sys.stderr)
    return 0


def _models(args: argparse.Namespace) -> int:
    from lang_sam.interfaces.catalog import format_rows, model_rows, rows_as_json

    rows = model_rows(args.checkpoint_dir)
    print(json.dumps(rows_as_json(rows), indent=2) if args.json else format_rows(rows))
    return 0


def _finetune(args: argparse.Namespace) -> int:
    _require("lightning", "train")
    from lang_sam.training.finetune import FinetuneConfig, finetune

    settings = _settings(args)
    devices = args.devices if args.devices == "auto" else _whole_number(args.devices, "--devices")
    summary = finetune(FinetuneConfig(
        coco=args.coco, images=args.images, out=args.out, sam_type=settings.sam_type, sam_checkpoint=settings.sam_checkpoint,
        checkpoint_dir=settings.checkpoint_dir, epochs=args.epochs, max_steps=args.max_steps, val_fraction=args.val_fraction,
        batch_size=args.batch_size, learning_rate=args.lr, box_jitter=args.box_jitter, points_per_box=args.points_per_box,
        train_prompt_encoder=args.train_prompt_encoder, accelerator=args.accelerator, devices=devices,
        strategy=args.strategy, precision=args.precision, resume=args.resume, seed=args.seed, cache_dir=args.cache_dir,
        show_progress=not args.quiet,
    ))
    before, best = summary["val_miou_before"], summary["val_miou_best"]
    print(f"lang-sam: {summary['steps']} steps in {summary['seconds']} s; validation mIoU "
          f"{'' if before is None else f'{before:.4f} before, '}{best:.4f} best; wrote {args.out}/model.pth and {args.out}/hf/")
    if before is not None and best <= before:
        print("lang-sam: warning: no epoch beat the untrained model's validation mIoU; train longer (--epochs), "
              "try another --lr, or check the masks and boxes of the dataset.", file=sys.stderr)
    return 0


def _whole_number(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidOptionError(f"{flag} takes a whole number or auto, got {text!r}.") from None


def _export_onnx(args: argparse.Namespace) -> int:
    _require("onnx", "onnx")
    from lang_sam.segmenter.build import load_sam
    from lang_sam.segmenter.onnx import check_opset, export_onnx
    from lang_sam.settings import Settings

    if args.quantize:
        _require("onnxruntime", "onnx")
    check_opset(args.opset)
    check_output_folder(args.out)  # before the model loads; export_onnx checks again for library callers
    settings = Settings.from_environment(sam_type=args.sam_type, sam_checkpoint=args.checkpoint, checkpoint_dir=args.checkpoint_dir)
    name, sam = load_sam(settings.sam_type, settings.sam_checkpoint, "float32", settings.checkpoint_dir)
    paths = export_onnx(sam, args.out, quantize=args.quantize, encoder=args.encoder,
                        return_single_mask=not args.return_all_masks, opset=args.opset)
    for path in paths:
        print(f"lang-sam: wrote {path} (SAM {name})", file=sys.stderr)
    return 0


def _convert(args: argparse.Namespace) -> int:
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


def _generator_options(args: argparse.Namespace) -> dict:
    """SamAutomaticMaskGenerator's keyword arguments from the GENERATOR_OPTIONS flags."""
    return {flag.lstrip("-").replace("-", "_"): getattr(args, flag.lstrip("-").replace("-", "_")) for flag, *_ in GENERATOR_OPTIONS}


def _everything(args: argparse.Namespace) -> int:
    from lang_sam.devices import resolve_device, resolve_dtype
    from lang_sam.everything import EverythingLabeler, draw_everything, everything_json
    from lang_sam.io.images import load_image
    from lang_sam.segmenter import SamAutomaticMaskGenerator

    options = _generator_options(args)
    settings = _settings(args)
    resolve_dtype(settings.dtype, resolve_device(settings.device))  # bad settings fail before any work
    SamAutomaticMaskGenerator(None, **options)  # bad options fail before the model loads
    images, outputs = _plan_outputs(args)
    if not images:
        return 0 if outputs else 2
    models = EverythingLabeler.from_settings(settings, options, args.semantic)
    print(f"lang-sam: {models.description}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(args.out)
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
        _write_outputs(args.out / outputs[path], draw_everything(image, found), payload)
        print(f"lang-sam: {path}: {len(found)} masks", file=sys.stderr)
    print(f"lang-sam: {len(images) - failures} of {len(images)} images written to {args.out}", file=sys.stderr)
    return 1 if failures else 0


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
        everything = _generator_options(args)
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
    settings = _settings(args)
    if args.engine == "ray" or args.ray_address:
        _require("ray", "ray")
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


def _evaluate(args: argparse.Namespace) -> int:
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
    settings = _settings(args)
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


def _collect_images(inputs: list[Path], out: Path) -> list[Path]:
    """The files given, and the images under the folders given (subfolders too, as label reads
    them), leaving out what lies in the output folder: a rerun never reads its own drawings."""
    images: list[Path] = []
    for path in inputs:
        if path.is_dir():
            images.extend(p for p in find_images(path) if out.resolve() not in p.resolve().parents)
        else:
            images.append(path)  # a missing or unreadable file is reported when it is read
    return images


def _output_names(images: list[Path]) -> list[str]:
    """Output stems: the image's stem, with its extension and then a number added when two inputs
    would share it (photos/a.jpg, photos/a.png, other/a.jpg -> a.jpg, a.png, a.jpg-2)."""
    stems = [path.stem for path in images]
    names: list[str] = []
    for path, stem in zip(images, stems):
        name = stem if stems.count(stem) == 1 else path.name
        candidate, number = name, 2
        while candidate in names:
            candidate, number = f"{name}-{number}", number + 1
        names.append(candidate)
    return names



if __name__ == "__main__":
    sys.exit(main())
