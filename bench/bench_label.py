"""Throughput of ``lang-sam label`` on the COCO val2017 subset of ../shared/data.

vit_b and Grounding DINO Swin-T with random weights saved in their real formats, float32 and
bfloat16, the local engine with background decoding. With random weights the detector keeps
almost every query, so each image keeps its top 16 boxes. Reports images/s, the share of the run
the models spent waiting for prepared input (target: under 5%), and the decoding and resizing that
the background threads did meanwhile.

    python bench/bench_label.py --images 16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from lang_sam.devices import bf16_skip_reason, describe_cpu

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
COCO_IMAGES = ROOT.parent / "shared" / "data" / "coco-val-subset" / "images"
CLASSES = ("person", "car", "dog", "chair", "bottle", "cup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16, help="first N images of the subset (default: %(default)s)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    args = parser.parse_args()
    if not COCO_IMAGES.is_dir():
        sys.exit(f"{COCO_IMAGES} is absent: this benchmark needs the shared COCO subset.")

    from bench_detector import build as build_detector
    from bench_pipeline import sam_weights

    from lang_sam.datasets.labeling import LabelJob, list_images, run_local
    from lang_sam.settings import Settings

    files = tuple(list_images(str(COCO_IMAGES))[: args.images])
    skip_bf16 = bf16_skip_reason()
    if skip_bf16 and "bfloat16" in args.dtypes:
        print(skip_bf16)
        args.dtypes = [dtype for dtype in args.dtypes if dtype != "bfloat16"]
    print(f"machine: {describe_cpu()}, torch {torch.__version__}; vit_b + Swin-T (random), "
          f"{len(files)} COCO images, top 16 boxes each, chunks of 8, batches of 4, 2 preparing threads")
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "sam_vit_b_01ec64.pth"
        torch.save(sam_weights("vit_b"), checkpoint)
        model, processor = build_detector("swin_t")
        model.save_pretrained(Path(folder) / "detector")
        processor.save_pretrained(Path(folder) / "detector")
        for dtype in args.dtypes:
            settings = Settings("vit_b", str(checkpoint), str(Path(folder) / "detector"), device="cpu", dtype=dtype)
            job = LabelJob(str(COCO_IMAGES), files, CLASSES, Path(folder) / f"out-{dtype}", chunk_size=8,
                           batch_size=4, box_threshold=0.0, text_threshold=0.0, max_detections=16)
            stats = run_local(job, settings, workers=2, show_progress=False)
            print(f"{dtype:9} {stats.images / stats.seconds:6.3f} images/s ({stats.seconds / stats.images:5.2f} s per image); "
                  f"model waiting for input {stats.waiting_seconds:5.2f} s = {100 * stats.waiting_seconds / stats.seconds:.2f}% "
                  f"of the run (target < 5%); decoding + resizing in background threads {stats.preparing_seconds:5.2f} s "
                  f"({1000 * stats.preparing_seconds / stats.images:.0f} ms per image)")


if __name__ == "__main__":
    main()
