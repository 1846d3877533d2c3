"""lang-sam finetune: SAM's mask decoder trained on a COCO dataset with Lightning."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lang_sam.errors import InvalidOptionError
from lang_sam.interfaces.cli import common

NAME = "finetune"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    finetune = subparsers.add_parser(
        NAME,
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
    finetune.add_argument("--sam-checkpoint", help=common.SAM_CHECKPOINT_HELP)
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


def run(args: argparse.Namespace) -> int:
    common.require("lightning", "train")
    from lang_sam.training.finetune import FinetuneConfig, finetune

    settings = common.settings(args)
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
