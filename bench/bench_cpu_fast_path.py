"""The CPU user's fast path (issue 32): from a new photo to its first click's mask, and to a text
prompt's masks, with the light models at their true size (random weights), on --threads threads.

Models: SAM v1 vit_b (our own), SAM 2.1 tiny (Sam2Config(): Hiera-T), EdgeTAM (EdgeTamConfig on
timm's repvit_m1, 1024 input) and SAM 3 LiteText (Sam3LiteTextConfig(): SAM 3's image model, 1008
input, with a MobileCLIP text encoder; its vocabulary is the tests' byte-level one, 514 tokens
against CLIP's 49,408, so its embedding table is 25 M weights smaller). Each in float32, and in
bfloat16 where this CPU's bf16 is native.

- first click: LangSAM.predict(photo, points=[one click]) on a photo never seen (its embedding not
  cached): pre-processing, the image encoder, one click decoded (SAM's best of three), the result.
- text: LangSAM.predict(photo, "truck") on a photo never seen: SAM 3 LiteText segments it itself;
  the others get Grounding DINO Swin-T's boxes (random weights: it keeps what clears the
  thresholds, here set to 0 and max_detections 8, so 8 boxes are decoded) and segment them.
Each figure is the best of --repeats runs after one warm-up (a different photo each time: one
pixel changed), the least disturbed by other work on a shared machine. Random weights: timings,
not quality.

    python bench/bench_cpu_fast_path.py                    # all four, float32 and native bf16
    python bench/bench_cpu_fast_path.py --models edgetam --dtypes float32 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' tokenizers and model builders
from bench_sam import print_machine, test_image  # noqa: E402

CLICK = [[512.0, 384.0]]
MODELS = ("vit_b", "sam2.1-hiera-tiny", "edgetam", "sam3-lite-text")


def segmenter_of(name: str, folder: Path, dtype: str):
    """The segmenter adapter of a registry name, built at its true size with seeded random weights."""
    import transformers

    from lang_sam.families.loading import load_segmenter
    from lang_sam.segmenter.adapter import SamV1Segmenter
    from lang_sam.segmenter.build import build_sam

    torch.manual_seed(0)
    if name == "vit_b":  # random weights; the prompt encoder kept in float32, as lang-sam loads SAM v1
        return SamV1Segmenter(build_sam("vit_b", dtype=dtype), name)
    if name == "sam2.1-hiera-tiny":
        transformers.Sam2Model(transformers.Sam2Config()).save_pretrained(folder)
        transformers.Sam2Processor(transformers.Sam2ImageProcessor()).save_pretrained(folder)
    elif name == "edgetam":
        backbone = transformers.TimmWrapperConfig(architecture="repvit_m1", do_pooling=False,
                                                  model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]})
        config = transformers.EdgeTamConfig(vision_config={"backbone_config": backbone.to_dict()})
        transformers.EdgeTamModel(config).save_pretrained(folder)
        transformers.Sam2Processor(transformers.Sam2ImageProcessor()).save_pretrained(folder)
    else:
        from tests.conftest import byte_level_clip_tokenizer
        from tests.families import test_sam3

        tokenizer = byte_level_clip_tokenizer(test_sam3.TEXT_TOKENS)
        text = {"vocab_size": len(tokenizer), "max_position_embeddings": test_sam3.TEXT_TOKENS}
        config = transformers.Sam3LiteTextConfig(text_config=text)
        test_sam3.random_sam3(config, model_class="Sam3LiteTextModel").save_pretrained(folder)
        test_sam3.sam3_processor(tokenizer, config.vision_config.image_size).save_pretrained(folder)
    return load_segmenter(checkpoint=folder, device="cpu", dtype=dtype)


def detector_of(folder: Path, dtype: str):
    """Grounding DINO Swin-T with seeded random weights, saved and loaded as lang-sam loads it."""
    from bench_detector import build_family

    from lang_sam.families.detectors import load_detector

    model, processor = build_family("grounding-dino", small=False)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return load_detector(str(folder), "cpu", dtype)


def best_time(run, repeats: int) -> float:
    """The best of repeats timings of run(photo) on photos never seen before, after one warm-up."""
    photo = test_image()
    times = []
    for attempt in range(repeats + 1):
        fresh = photo.copy()
        fresh[0, 0, 0] ^= attempt + 1  # a new image key: no cached embedding
        start = time.perf_counter()
        run(fresh)
        if attempt:
            times.append(time.perf_counter() - start)
    return min(times)


def row(name: str, dtype: str, detector, repeats: int) -> None:
    from lang_sam import LangSAM

    with tempfile.TemporaryDirectory() as folder:
        segmenter = segmenter_of(name, Path(folder), dtype)
    pipeline = LangSAM.from_parts(segmenter, None if segmenter.takes_text else detector)
    click = best_time(lambda photo: pipeline.predict(photo, points=CLICK), repeats) if segmenter.takes_clicks_and_boxes else None
    text = best_time(lambda photo: pipeline.predict(photo, "truck", box_threshold=0.0, text_threshold=0.0,
                                                    max_detections=8), repeats)
    size = segmenter.parameter_count() / 1e6
    click_text = f"{click:7.2f} s" if click is not None else "   (no clicks)"
    print(f"| {name:18} | {dtype:8} | {size:6.1f} M | {click_text} | {text:7.2f} s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--dtypes", nargs="+", choices=("float32", "bfloat16"), default=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    skip = print_machine()
    dtypes = [dtype for dtype in args.dtypes if dtype == "float32" or skip is None]
    print(f"| {'model':18} | {'dtype':8} | weights  | first click | text (8 objects with a detector) |")
    for dtype in dtypes:
        with tempfile.TemporaryDirectory() as folder:
            detector = detector_of(Path(folder), dtype) if any(name != "sam3-lite-text" for name in args.models) else None
        for name in args.models:
            row(name, dtype, detector, args.repeats)


if __name__ == "__main__":
    main()
