"""SAM speed and memory: lang_sam against Meta's segment-anything, same random weights, one run.

Prints, per SAM size: image-encoder time and peak memory (float32 for both, and lang_sam in
bfloat16), decoder time for 1, 8 and 32 boxes in one pass, and lang_sam's peak memory for 1,000
boxes. Each measurement runs in its own process so peak memory is not polluted by the others.

    python bench/bench_sam.py                 # vit_b and vit_h
    python bench/bench_sam.py --sizes vit_b --repeats 3

Needs the test extra (segment-anything). Random weights: timings, not quality.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lang_sam.devices import bf16_skip_reason, describe_cpu

PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "demo-images" / "truck.jpg"
IMAGE_SIZE = (768, 1024)  # (height, width): a 1024x768 photo
DECODER_BOXES = (1, 8, 32)
MANY_BOXES = 1000


def rss_mib(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1)) / 1024


def reset_peak() -> None:
    """Make VmHWM (peak RSS) start again from the current RSS (Linux clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def worker_result(script: str, *args: str) -> dict:
    """What `python script --worker ARGS` prints last, read as JSON: one measurement in a fresh
    process, so that its peak memory is its own."""
    command = [sys.executable, script, "--worker", *args]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def print_machine() -> str | None:
    """Print the machine line a benchmark starts with; returns why its bf16 runs are left out here,
    printed too (None: bf16 is native here, and they run)."""
    print(f"machine: {describe_cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    skip = bf16_skip_reason()
    if skip:
        print(skip)
    return skip


def test_image() -> np.ndarray:
    height, width = IMAGE_SIZE
    if PHOTO.is_file():
        return np.asarray(Image.open(PHOTO).convert("RGB").resize((width, height), Image.Resampling.BILINEAR))
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def boxes_for(count: int) -> np.ndarray:
    rng = np.random.default_rng(count)
    height, width = IMAGE_SIZE
    corners = rng.uniform(0, 1, size=(count, 2, 2)) * [width, height]
    return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)


def timed(function, repeats: int, statistic=statistics.median) -> float:
    """statistic (the median, or min for the run least disturbed by other work) of repeats timings
    of function, after one warm-up run."""
    function()  # warm-up: kernel selection and first-touch allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistic(times)


def worker(implementation: str, sam_type: str, dtype_name: str, repeats: int, many_boxes: bool) -> dict:
    """One process: build the model, measure the encoder, the decoder and (optionally) 1,000 boxes."""
    from lang_sam.registry import SAM_MODELS
    from lang_sam.segmenter import SamPredictor, build_sam
    from lang_sam.segmenter.build import build_sam_from_architecture

    torch.manual_seed(0)
    state_dict = build_sam_from_architecture(SAM_MODELS[sam_type].architecture).state_dict()
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    if implementation == "reference":
        from segment_anything import SamPredictor as ReferencePredictor
        from segment_anything import sam_model_registry

        model = sam_model_registry[sam_type]()
        model.load_state_dict(state_dict)
        predictor = ReferencePredictor(model.eval())
    else:
        model = build_sam(sam_type, dtype=dtype)
        model.load_state_dict(state_dict)
        predictor = SamPredictor(model)
    del state_dict
    image = test_image()

    result = {"encoder_s": timed(lambda: predictor.set_image(image), repeats)}
    before = rss_mib("VmRSS")
    reset_peak()
    predictor.set_image(image)
    result["encoder_peak_mib"] = rss_mib("VmHWM") - before

    for count in DECODER_BOXES:
        boxes = torch.as_tensor(predictor.transform.apply_boxes(boxes_for(count), IMAGE_SIZE), dtype=torch.float32) if (
            implementation == "reference"
        ) else torch.as_tensor(boxes_for(count), dtype=torch.float32)

        def decode(boxes=boxes):
            with torch.inference_mode():
                if implementation == "reference":
                    predictor.predict_torch(None, None, boxes, multimask_output=False)
                else:
                    predictor.predict_torch(boxes=boxes, multimask_output=False, prompts_in_image_pixels=True)

        result[f"decoder_{count}_s"] = timed(decode, max(repeats, 3))

    if many_boxes:
        boxes = torch.as_tensor(boxes_for(MANY_BOXES), dtype=torch.float32)
        before = rss_mib("VmRSS")
        reset_peak()
        start = time.perf_counter()
        masks, _, _ = predictor.predict_torch(boxes=boxes, multimask_output=False, prompts_in_image_pixels=True)
        result["many_boxes_s"] = time.perf_counter() - start
        result["many_boxes_peak_mib"] = rss_mib("VmHWM") - before
        result["many_boxes_output_mib"] = masks.numel() * masks.element_size() / 2**20
    return result


def run_worker(implementation: str, sam_type: str, dtype_name: str, repeats: int, many_boxes: bool) -> dict:
    command = [sys.executable, __file__, "--worker", implementation, sam_type, dtype_name, "--repeats", str(repeats)]
    if many_boxes:
        command.append("--many-boxes")
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["vit_b", "vit_h"], choices=["vit_b", "vit_l", "vit_h"])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs after one warm-up (median)")
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "SIZE", "DTYPE"), help=argparse.SUPPRESS)
    parser.add_argument("--many-boxes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeats, args.many_boxes)))
        return

    print(f"machine: {describe_cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"image: {'truck.jpg' if PHOTO.is_file() else 'random pixels'} at {IMAGE_SIZE[1]}x{IMAGE_SIZE[0]}\n")
    skip_bf16 = bf16_skip_reason()
    if skip_bf16:
        print(skip_bf16 + "\n")
    for sam_type in args.sizes:
        reference = run_worker("reference", sam_type, "float32", args.repeats, False)
        ours = run_worker("lang_sam", sam_type, "float32", args.repeats, sam_type == "vit_b")
        ours_bf16 = None if skip_bf16 else run_worker("lang_sam", sam_type, "bfloat16", args.repeats, False)
        print(f"== {sam_type}")
        print(f"{'':34}{'reference':>12}{'lang_sam fp32':>15}" + ("" if skip_bf16 else f"{'lang_sam bf16':>15}"))
        rows = [("image encoder (s)", "encoder_s"), ("encoder peak memory (MiB)", "encoder_peak_mib")]
        rows += [(f"decoder, {n} boxes (s)", f"decoder_{n}_s") for n in DECODER_BOXES]
        for label, key in rows:
            bf16 = "" if skip_bf16 else f"{ours_bf16[key]:15.3f}"
            print(f"{label:34}{reference[key]:12.3f}{ours[key]:15.3f}{bf16}")
        print(f"encoder speed-up fp32: {reference['encoder_s'] / ours['encoder_s']:.2f}x"
              + ("" if skip_bf16 else f"   bf16: {reference['encoder_s'] / ours_bf16['encoder_s']:.2f}x (against the reference's fp32)"))
        print(f"encoder peak memory, ours / reference: {ours['encoder_peak_mib'] / reference['encoder_peak_mib']:.2f}")
        print(f"32 boxes / 1 box, one decoder pass: reference {reference['decoder_32_s'] / reference['decoder_1_s']:.1f}x, "
              f"lang_sam {ours['decoder_32_s'] / ours['decoder_1_s']:.1f}x")
        if "many_boxes_s" in ours:
            print(f"{MANY_BOXES} boxes (lang_sam fp32): {ours['many_boxes_s']:.1f} s, peak "
                  f"{ours['many_boxes_peak_mib']:.0f} MiB above the model, of which "
                  f"{ours['many_boxes_output_mib']:.0f} MiB are the returned masks")
        print()


if __name__ == "__main__":
    main()
