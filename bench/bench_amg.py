"""Segment everything: lang_sam's SamAutomaticMaskGenerator against segment-anything's, same random
weights, one run.

Prints time and peak memory of generate() on a 1024x768 photo, each run in its own process, for
two settings: Meta's defaults, and "keep all" (IoU and stability filters off), where every one of
the 3,072 masks of the 32x32 grid goes through every step. With random weights the predicted IoUs
are near 0, so at the defaults no mask passes the 0.88 IoU filter: that row measures the decoder
and the filter; trained weights keep a share of the masks, between the two rows.

    python bench/bench_amg.py                   # vit_b
    python bench/bench_amg.py --sizes vit_b vit_h

Needs the test extra (segment-anything). Random weights: timings, not quality.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from bench_sam import reset_peak, rss_mib, test_image  # this folder is on the path when run as a script
from lang_sam.devices import bf16_skip_reason, describe_cpu

SETTINGS = {
    "defaults": {},
    "keep all": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0},
}


def worker(implementation: str, sam_type: str, dtype_name: str, setting: str) -> dict:
    from lang_sam.registry import SAM_MODELS
    from lang_sam.segmenter import SamAutomaticMaskGenerator, build_sam
    from lang_sam.segmenter.build import build_sam_from_architecture

    torch.manual_seed(0)
    state_dict = build_sam_from_architecture(SAM_MODELS[sam_type].architecture).state_dict()
    if implementation == "reference":
        from segment_anything import SamAutomaticMaskGenerator as ReferenceGenerator
        from segment_anything import sam_model_registry

        model = sam_model_registry[sam_type]()
        model.load_state_dict(state_dict)
        generator = ReferenceGenerator(model.eval(), **SETTINGS[setting])
    else:
        model = build_sam(sam_type, dtype={"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name])
        model.load_state_dict(state_dict)
        generator = SamAutomaticMaskGenerator(model, **SETTINGS[setting])
    del state_dict
    image = test_image()
    before = rss_mib("VmRSS")
    reset_peak()
    start = time.perf_counter()
    records = generator.generate(image)
    return {"seconds": time.perf_counter() - start, "peak_mib": rss_mib("VmHWM") - before, "masks": len(records)}


def run_worker(implementation: str, sam_type: str, dtype_name: str, setting: str) -> dict:
    command = [sys.executable, __file__, "--worker", implementation, sam_type, dtype_name, setting]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["vit_b"], choices=["vit_b", "vit_l", "vit_h"])
    parser.add_argument("--worker", nargs=4, metavar=("IMPL", "SIZE", "DTYPE", "SETTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    print(f"machine: {describe_cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("image: truck.jpg (or random pixels) at 1024x768, points_per_side=32, points_per_batch=64\n")
    skip_bf16 = bf16_skip_reason()
    if skip_bf16:
        print(skip_bf16 + "\n")
    for sam_type in args.sizes:
        print(f"== {sam_type}")
        print(f"{'':12}{'':>10}{'reference':>12}{'lang_sam fp32':>15}" + ("" if skip_bf16 else f"{'lang_sam bf16':>15}"))
        for setting in SETTINGS:
            reference = run_worker("reference", sam_type, "float32", setting)
            ours = run_worker("lang_sam", sam_type, "float32", setting)
            ours_bf16 = None if skip_bf16 else run_worker("lang_sam", sam_type, "bfloat16", setting)
            for label, key, form in (("time (s)", "seconds", ".1f"), ("peak (MiB)", "peak_mib", ".0f"), ("masks", "masks", "d")):
                bf16 = "" if skip_bf16 else f"{ours_bf16[key]:15{form}}"
                print(f"{setting:12}{label:>10}{reference[key]:12{form}}{ours[key]:15{form}}{bf16}")
            ratios = f"{setting}: speed-up fp32 {reference['seconds'] / ours['seconds']:.2f}x"
            if not skip_bf16:
                ratios += f", bf16 {reference['seconds'] / ours_bf16['seconds']:.2f}x (against the reference's fp32)"
            ratios += f"; peak memory ours / reference {ours['peak_mib'] / max(reference['peak_mib'], 1):.2f}"
            print(ratios)
        print()


if __name__ == "__main__":
    main()
