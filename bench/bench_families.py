"""SAM 2.1 and SAM-HQ through lang-sam against the same transformers model called directly.

For each family at its real default size (Sam2Config(): Hiera-T, as sam2.1-hiera-tiny;
SamHQConfig(): ViT-B, as sam-hq-vit-base), random weights saved with save_pretrained and loaded
both ways, on the benchmark photo with 8 box prompts:
- direct: the processor, model(**inputs) and post_process_masks, as transformers' docs show it;
- lang-sam: TransformersSegmenter preprocess + embed + decode (the same work), and a second
  prompt on the same image, where lang-sam reuses the embedding (LangSAM's cache) and the direct
  call encodes again.
Masks are compared pixel for pixel; times are medians of --repeats runs after one warm-up, the
direct call and lang-sam's taking turns (bench/timing.py), with the median of their side-by-side
ratios.

    python bench/bench_families.py --families sam2 sam_hq --dtypes float32 bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from lang_sam.devices import bf16_skip_reason, describe_cpu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sam import test_image  # noqa: E402
from timing import paired_ratio, take_turns  # noqa: E402

BOXES = [[40.0 + 90 * i, 60.0 + 40 * (i % 3), 300.0 + 80 * i, 500.0 + 30 * (i % 2)] for i in range(8)]


def save_family(family: str, folder: Path) -> None:
    """A random model of the family at its default (real) size and its processor, as transformers saves them."""
    from transformers import (
        Sam2Config,
        Sam2ImageProcessor,
        Sam2Model,
        Sam2Processor,
        SamHQConfig,
        SamHQModel,
        SamHQProcessor,
        SamImageProcessor,
    )

    torch.manual_seed(0)
    if family == "sam2":
        Sam2Model(Sam2Config()).save_pretrained(folder)
        Sam2Processor(Sam2ImageProcessor()).save_pretrained(folder)
    else:
        SamHQModel(SamHQConfig()).save_pretrained(folder)
        SamHQProcessor(SamImageProcessor()).save_pretrained(folder)


@torch.inference_mode()
def bench(family: str, dtype: torch.dtype, repeats: int) -> None:
    from transformers import AutoModel, AutoProcessor

    from lang_sam.families.transformers_sam import TransformersSegmenter

    image = test_image()
    with tempfile.TemporaryDirectory() as folder:
        save_family(family, Path(folder))
        model = AutoModel.from_pretrained(folder).to(dtype).eval()
        processor = AutoProcessor.from_pretrained(folder)
        segmenter = TransformersSegmenter(folder, device="cpu", dtype=dtype)

    def direct():
        inputs = processor(images=image, input_boxes=[BOXES], return_tensors="pt")
        outputs = model(pixel_values=inputs["pixel_values"].to(dtype), input_boxes=inputs["input_boxes"].to(dtype),
                        multimask_output=False)
        sizes = [inputs["original_sizes"]] + ([inputs["reshaped_input_sizes"]] if "reshaped_input_sizes" in inputs else [])
        return processor.post_process_masks(outputs.pred_masks.float(), *sizes)[0]

    embedding = None

    def ours():
        nonlocal embedding
        embedding = segmenter.embed(segmenter.preprocess(image))
        return segmenter.decode(embedding, boxes=torch.tensor(BOXES)).masks

    def ours_again():
        return segmenter.decode(embedding, boxes=torch.tensor(BOXES)).masks

    times, results = take_turns({"direct": direct, "ours": ours}, repeats)
    direct_time, ours_time = statistics.median(times["direct"]), statistics.median(times["ours"])
    again_times, _ = take_turns({"again": ours_again}, repeats)
    again_time = statistics.median(again_times["again"])
    parameters = segmenter.parameter_count() / 1e6
    mismatched = int((results["direct"] != results["ours"]).sum())
    name = f"{family} ({parameters:.1f}M), {str(dtype).removeprefix('torch.')}"
    print(f"{name:<28} direct {direct_time:6.2f} s | lang-sam {ours_time:6.2f} s ({ours_time / direct_time:.2f}x; "
          f"side by side {paired_ratio(times['ours'], times['direct']):.3f}x) | "
          f"same image again {again_time * 1000:6.0f} ms ({again_time / direct_time:.3f}x) | "
          f"{mismatched} of {results['ours'].numel()} mask pixels differ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=["sam2", "sam_hq"], choices=["sam2", "sam_hq"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{describe_cpu()}, torch {torch.__version__}, {torch.get_num_threads()} threads; image {test_image().shape[1]}x{test_image().shape[0]}, 8 boxes")
    for family in args.families:
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            if dtype is torch.bfloat16 and (reason := bf16_skip_reason()):
                print(f"{family}, bfloat16: skipped ({reason})")
                continue
            bench(family, dtype, args.repeats)


if __name__ == "__main__":
    main()
