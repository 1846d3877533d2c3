"""SAM 3 text segmentation speed and memory: lang-sam's Sam3TextSegmenter against transformers'
Sam3Model called directly, same random weights, same 1024x768 photo, same four classes.

Three ways to get every class's instances (boxes, scores, masks at image size):
- transformers as documented: processor(images=..., text=name), model(**inputs) and
  post_process_instance_segmentation, once per class (the vision encoder runs per class);
- transformers with the vision features reused: get_vision_features once, then
  model(vision_embeds=..., input_ids=...) per class (what its docstring offers for reuse);
- lang_sam: segment_text, the vision encoder once and the classes in one batch.
Each runs in its own process (peak memory unpolluted), taking turns with the others --rounds
times, each turn timed --repeats times; the best time is reported, the figure least disturbed by
other work on the machine (on a shared one, single timings vary several-fold). The instance
counts must agree. The score threshold is the random model's median score for the first class,
so that about half of the queries are kept and their masks go through post-processing as real
detections would.

    python bench/bench_sam3.py            # SAM 3's own size (Sam3Config()), 1008x1008 input
    python bench/bench_sam3.py --tiny     # the tests' tiny model, 112x112 input: seconds

The text encoder reads a byte-level CLIP vocabulary (CLIP's own needs a download), so names
take a token a letter; every prompt is padded to SAM 3's 32 tokens either way. Random weights
(spread as the tests spread them, so scores vary): timings, not quality.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' tiny SAM 3 and tokenizer
from bench_sam import print_machine, reset_peak, rss_mib, test_image, timed, worker_result  # noqa: E402

CLASSES = ["truck", "wheel", "person", "window"]


def build(folder: Path, tiny: bool) -> tuple[int, float]:
    """Save a seeded random SAM 3 (model and processor) in folder; returns its parameter count and
    its median query score for the first class on the test photo."""
    from transformers import Sam3Config

    from tests.conftest import byte_level_clip_tokenizer
    from tests.families import test_sam3

    tokenizer = byte_level_clip_tokenizer(test_sam3.TEXT_TOKENS)
    config = test_sam3.tiny_sam3_config(len(tokenizer)) if tiny else Sam3Config()
    model = test_sam3.random_sam3(config)
    processor = test_sam3.sam3_processor(tokenizer, test_sam3.IMAGE_SIZE if tiny else config.image_size)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    with torch.inference_mode():
        outputs = model(**processor(images=Image.fromarray(test_image()), text=CLASSES[0], return_tensors="pt"))
    scores = outputs.pred_logits.sigmoid() * outputs.presence_logits.sigmoid()
    return sum(parameter.numel() for parameter in model.parameters()), float(scores.median())


def worker(implementation: str, folder: str, dtype_name: str, threshold: str, repeats: int) -> dict:
    image, box_threshold = test_image(), float(threshold)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    if implementation == "lang_sam":
        from lang_sam.families.sam3 import Sam3TextSegmenter

        segmenter = Sam3TextSegmenter(folder, device="cpu", dtype=dtype)

        def run() -> int:
            return len(segmenter.segment_text([image], [CLASSES], box_threshold=box_threshold)[0])
    else:
        from transformers import Sam3Model, Sam3Processor

        model, processor = Sam3Model.from_pretrained(folder).eval(), Sam3Processor.from_pretrained(folder)
        picture = Image.fromarray(image)

        def instances(outputs) -> int:
            return len(processor.post_process_instance_segmentation(
                outputs, threshold=box_threshold, mask_threshold=0.5, target_sizes=[image.shape[:2]])[0]["scores"])

        @torch.inference_mode()
        def run() -> int:
            if implementation == "transformers":
                return sum(instances(model(**processor(images=picture, text=name, return_tensors="pt")))
                           for name in CLASSES)
            vision = model.get_vision_features(pixel_values=processor(images=picture, return_tensors="pt").pixel_values)
            return sum(instances(model(vision_embeds=vision, **processor(text=name, return_tensors="pt")))
                       for name in CLASSES)

    seconds = timed(run, repeats, statistic=min)
    before = rss_mib("VmRSS")
    reset_peak()
    found = run()
    return {"seconds": seconds, "peak_mib": rss_mib("VmHWM") - before, "instances": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny SAM 3 instead of the real size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="turns each implementation takes, in rotation")
    parser.add_argument("--worker", nargs=4, metavar=("IMPL", "FOLDER", "DTYPE", "THRESHOLD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeats)))
        return

    skip_bf16 = print_machine()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        parameters, threshold = build(Path(folder), args.tiny)
        print(f"\n== SAM 3 {'tiny' if args.tiny else 'Sam3Config()'}: {parameters / 1e6:.1f} M parameters (built, "
              f"saved and scored in {time.perf_counter() - start:.0f} s), 1024x768 photo, classes {CLASSES}, "
              f"box_threshold {threshold:.4f} (the median score)")
        runs = {"transformers, per class": ("transformers", "float32"),
                "transformers, features reused": ("reuse", "float32"), "lang_sam fp32": ("lang_sam", "float32")}
        if not skip_bf16:
            runs["lang_sam bf16"] = ("lang_sam", "bfloat16")
        rows: dict[str, dict] = {}
        for _ in range(args.rounds):
            for label, (implementation, dtype) in runs.items():
                row = worker_result(__file__, implementation, folder, dtype, str(threshold), "--repeats",
                                    str(args.repeats))
                best = rows.setdefault(label, row)
                best.update(seconds=min(best["seconds"], row["seconds"]),
                            peak_mib=max(best["peak_mib"], row["peak_mib"]))
    baseline = rows["transformers, per class"]
    print(f"{'':32}{'time (s)':>10}{'peak (MiB)':>12}{'instances':>11}{'speed-up':>10}")
    for label, row in rows.items():
        print(f"{label:32}{row['seconds']:10.3f}{row['peak_mib']:12.0f}{row['instances']:11d}"
              f"{baseline['seconds'] / row['seconds']:9.2f}x")
    counts = {row["instances"] for label, row in rows.items() if "bf16" not in label}
    print("float32 instance counts agree" if len(counts) == 1 else f"float32 instance counts DIFFER: {counts}")


if __name__ == "__main__":
    main()
