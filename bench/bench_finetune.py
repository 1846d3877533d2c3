"""Fine-tuning from random vit_b weights (the only weights this machine has) on the shared COCO
subset: held-out box-prompted mIoU of the untrained and the fine-tuned model, steps and time. One
run of lang_sam.training.finetune, as ``lang-sam finetune`` runs it.

    python bench/bench_finetune.py [--images 60] [--epochs 25] [--lr 1e-4] [--batch-size 8] [--train-prompt-encoder]
                                   [--out /tmp/lang-sam-finetune]

The first N images of ../shared/data/coco-val-subset (a fifth held out); the image encoder's
embeddings are cached under --out, so a second run skips the encoding.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

REPOSITORY = Path(__file__).resolve().parents[1]
COCO = REPOSITORY.parent / "shared" / "data" / "coco-val-subset"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)  # lang-sam finetune's default; 1e-3 stalls at empty masks
    parser.add_argument("--train-prompt-encoder", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "lang-sam-finetune")
    args = parser.parse_args()
    if not COCO.is_dir():
        sys.exit(f"{COCO} is missing: this benchmark needs the shared COCO subset.")
    from lang_sam.devices import describe_cpu
    from lang_sam.registry import SAM_MODELS
    from lang_sam.segmenter.build import build_sam_from_architecture
    from lang_sam.training.finetune import FinetuneConfig, finetune

    print(f"machine: {describe_cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = json.loads((COCO / "instances.json").read_text())
    kept = {info["id"] for info in sorted(dataset["images"], key=lambda info: info["file_name"])[: args.images]}
    subset = {**dataset, "images": [i for i in dataset["images"] if i["id"] in kept],
              "annotations": [a for a in dataset["annotations"] if a["image_id"] in kept]}
    coco = args.out / "instances.json"
    coco.write_text(json.dumps(subset))
    start = args.out / "vit_b_random.pth"
    if not start.is_file():
        torch.manual_seed(0)
        torch.save(build_sam_from_architecture(SAM_MODELS["vit_b"].architecture).state_dict(), start)
    run = args.out / f"run-{len(list(args.out.glob('run-*')))}"
    summary = finetune(FinetuneConfig(coco=coco, images=COCO / "images", out=run, sam_type="vit_b", sam_checkpoint=start,
                                      epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                                      train_prompt_encoder=args.train_prompt_encoder,
                                      val_fraction=0.2, cache_dir=args.out / "cache", show_progress=False,
                                      extra={"log_every_n_steps": 10}))
    print(f"== fine-tuning vit_b from random weights, {args.images} COCO images ({summary['train_instances']} objects "
          f"to train on, {summary['val_instances']} held out in {summary['val_images']} images)")
    print(f"held-out box-prompted mIoU: untrained {summary['val_miou_before']:.3f}, fine-tuned {summary['val_miou_best']:.3f}")
    print(f"{summary['steps']} steps of {args.batch_size} ({summary['epochs']} epochs, lr {args.lr}) in {summary['seconds']:.0f} s "
          f"(with encoding the images once); run folder {run}")


if __name__ == "__main__":
    main()
