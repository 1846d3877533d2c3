"""SAM 3 against SAM 3 LiteText side by side (issue 32): what LiteText's distilled MobileCLIP text
encoder changes in size, memory and speed, each model at the tests' tiny size and at its true size
with seeded random weights, in float32 and (where this CPU's bf16 is native) bfloat16.

Per model and dtype, in a fresh process (so that peak memory is its own):
- weights: parameters and bytes of the text encoder (text_encoder and text_projection) and in all;
- memory: peak RSS above the process's RSS before loading, once loaded (load_segmenter on the
  saved folder) and at the end of the prompts. transformers maps a safetensors file of the model's
  own dtype and reads its pages on first use, so in float32 the weights enter RSS with the first
  prompt; loading in bfloat16 reads the float32 file whole and converts it;
- first prompt: LangSAM.predict(photo, "truck") on a photo never seen (pre-processing, the ViT
  trunk, the detector's neck, the text encoder, the DETR and mask decoders, post-processing);
- second prompt: LangSAM.predict(photo, "wheel") on the same photo: the pipeline's cached trunk
  states, so the detector's neck, the text encoder and the decoders only.
Each time is the best of --repeats runs (a new photo each: one pixel changed), the least disturbed
by other work on a shared machine. The models are image models (Sam3Model, Sam3LiteTextModel):
facebook/sam3 also holds SAM 3's tracker (12 M more weights), which takes no part in text.

Both read a byte-level CLIP vocabulary (CLIP's own needs a download), a token a letter, padded to
SAM 3's 32 tokens (LiteText's text positions set to 32, its configuration's default being 77);
their embedding tables keep CLIP's 49,408 rows, as the released models have. Random weights:
timings and sizes, not quality.

    python bench/bench_sam3_lite_text.py --tiny --repeats 5     # seconds
    python bench/bench_sam3_lite_text.py                        # true size: 6 to 20 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' tiny configs and tokenizer
from bench_sam import print_machine, reset_peak, rss_mib, test_image, worker_result  # noqa: E402

MODELS = {"sam3": "Sam3Model", "sam3-lite-text": "Sam3LiteTextModel"}
PROMPTS = ("truck", "wheel")
TEXT_PARTS = ("text_encoder.", "text_projection.")


def build(folder: Path, name: str, tiny: bool) -> None:
    """Save model name (seeded random weights, spread as the tests spread them) and its processor."""
    import transformers

    from tests.conftest import byte_level_clip_tokenizer
    from tests.families import test_sam3
    from tests.families.test_sam3_lite_text import tiny_sam3_lite_text_config

    tokenizer = byte_level_clip_tokenizer(test_sam3.TEXT_TOKENS)
    if tiny:
        config = (test_sam3.tiny_sam3_config if name == "sam3" else tiny_sam3_lite_text_config)(len(tokenizer))
    elif name == "sam3":
        config = transformers.Sam3Config()
    else:
        config = transformers.Sam3LiteTextConfig(text_config={"max_position_embeddings": test_sam3.TEXT_TOKENS})
    test_sam3.random_sam3(config, model_class=MODELS[name]).save_pretrained(folder)
    image_size = test_sam3.IMAGE_SIZE if tiny else config.vision_config.backbone_config.image_size
    test_sam3.sam3_processor(tokenizer, image_size).save_pretrained(folder)


def worker(folder: str, dtype: str, repeats: int) -> dict:
    """Load the saved model through lang-sam's loader, then time the first and second prompts."""
    from lang_sam import LangSAM
    from lang_sam.families.loading import load_segmenter

    before = rss_mib("VmRSS")
    reset_peak()
    segmenter = load_segmenter(checkpoint=folder, device="cpu", dtype=dtype)
    loaded_mib = rss_mib("VmHWM") - before
    weights = dict(segmenter.model.named_parameters())
    text = [weight for name, weight in weights.items() if name.startswith(TEXT_PARTS)]
    pipeline = LangSAM.from_parts(segmenter, None)
    photo, first, second = test_image(), [], []
    for attempt in range(repeats):
        fresh = photo.copy()
        fresh[0, 0, 0] ^= attempt + 1  # a new image key: nothing cached
        for prompt, times in zip(PROMPTS, (first, second)):
            start = time.perf_counter()
            pipeline.predict(fresh, prompt, box_threshold=0.5)
            times.append(time.perf_counter() - start)
    return {"text_parameters": sum(w.numel() for w in text), "text_bytes": sum(w.numel() * w.element_size() for w in text),
            "parameters": sum(w.numel() for w in weights.values()),
            "bytes": sum(w.numel() * w.element_size() for w in weights.values()),
            "loaded_mib": loaded_mib, "peak_mib": rss_mib("VmHWM") - before, "first": min(first), "second": min(second)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny models instead of the true sizes")
    parser.add_argument("--dtypes", nargs="+", choices=("float32", "bfloat16"), default=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--worker", nargs=2, metavar=("FOLDER", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeats)))
        return

    skip = print_machine()
    dtypes = [dtype for dtype in args.dtypes if dtype == "float32" or skip is None]
    print(f"{'tiny' if args.tiny else 'true size'}, random weights, 1024x768 photo, best of {args.repeats}\n")
    print("| model | dtype | text encoder | in all | peak RSS: loaded | and prompted | first prompt | second prompt, same photo |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rows: dict[tuple[str, str], dict] = {}
    for name in MODELS:
        with tempfile.TemporaryDirectory() as folder:
            build(Path(folder), name, args.tiny)
            for dtype in dtypes:
                row = rows[name, dtype] = worker_result(__file__, folder, dtype, "--repeats", str(args.repeats))
                print(f"| {name} | {dtype} | {_size(row['text_parameters'], row['text_bytes'])} "
                      f"| {_size(row['parameters'], row['bytes'])} | {row['loaded_mib']:.0f} MiB | {row['peak_mib']:.0f} MiB "
                      f"| {row['first']:.3f} s | {row['second']:.3f} s |", flush=True)
    print("\nLiteText / SAM 3:")
    for dtype in dtypes:
        lite, full = rows["sam3-lite-text", dtype], rows["sam3", dtype]
        ratios = {key: lite[key] / full[key] for key in ("text_parameters", "parameters", "loaded_mib", "peak_mib", "first",
                                                          "second")}
        print(f"  {dtype}: " + ", ".join(f"{key} {value:.2f}x" for key, value in ratios.items()))


def _size(parameters: int, size: int) -> str:
    return f"{parameters / 1e6:.4g} M, {size / 2**20:.4g} MiB"


if __name__ == "__main__":
    main()
