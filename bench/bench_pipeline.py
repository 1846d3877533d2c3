"""The whole pipeline: lang-sam against lang-segment-anything v1's construction, same random weights.

Reference: Meta's segment-anything SamPredictor plus transformers' Grounding DINO as shipped
(float32), used as lang-segment-anything v1 does (detect, then set_image and decode the boxes, on
every call). lang-sam: LangSAM loading the same weights from files in the official formats.
With random weights the detector keeps almost every query, so both keep their top 16 boxes.
Reports the first predict on a photo and a second prompt on the same image.

    python bench/bench_pipeline.py --pairs vit_b:swin_t vit_h:swin_b
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lang_sam.devices import bf16_skip_reason, describe_cpu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detector import build as build_detector  # noqa: E402
from bench_sam import test_image  # noqa: E402

TOP_BOXES = 16
PROMPTS = ("truck, wheel", "person, window")


def sam_weights(sam_type: str) -> dict[str, torch.Tensor]:
    from lang_sam.registry import SAM_MODELS
    from lang_sam.segmenter.build import build_sam_from_architecture

    torch.manual_seed(0)
    return build_sam_from_architecture(SAM_MODELS[sam_type].architecture).state_dict()


def reference_run(sam_type: str, detector_size: str) -> dict:
    from segment_anything import SamPredictor, sam_model_registry

    sam = sam_model_registry[sam_type]()
    sam.load_state_dict(sam_weights(sam_type))
    predictor = SamPredictor(sam.eval())
    model, processor = build_detector(detector_size)

    def predict(image: np.ndarray, prompt: str):
        caption = " . ".join(name.strip() for name in prompt.split(",")) + " ."
        inputs = processor(images=Image.fromarray(image), text=caption, return_tensors="pt")
        with torch.no_grad():
            outputs = model(**inputs)
        detected = processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=0.0, text_threshold=0.0, target_sizes=[image.shape[:2]]
        )[0]
        boxes = detected["boxes"][detected["scores"].argsort(descending=True)[:TOP_BOXES]]
        predictor.set_image(image)
        transformed = predictor.transform.apply_boxes_torch(boxes, image.shape[:2])
        with torch.no_grad():
            masks, _, _ = predictor.predict_torch(None, None, transformed, multimask_output=False)
        return masks

    return timed_prompts(predict, test_image())


def lang_sam_run(sam_type: str, detector_size: str, dtype: str) -> dict:
    from lang_sam import LangSAM

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / f"{sam_type}.pth"
        torch.save(sam_weights(sam_type), checkpoint)
        model, processor = build_detector(detector_size)
        model.save_pretrained(Path(folder) / "detector")
        processor.save_pretrained(Path(folder) / "detector")
        pipeline = LangSAM(sam_type, checkpoint, Path(folder) / "detector", device="cpu", dtype=dtype)
    return timed_prompts(
        lambda image, prompt: pipeline.predict(image, prompt, box_threshold=0.0, text_threshold=0.0, max_detections=TOP_BOXES),
        test_image(),
    )


def timed_prompts(predict, image: np.ndarray) -> dict:
    """A first prompt on a new image, then a second prompt on the same image."""
    predict(image[::-1].copy(), PROMPTS[0])  # warm-up on another image of the same size
    start = time.perf_counter()
    predict(image, PROMPTS[0])
    first = time.perf_counter() - start
    start = time.perf_counter()
    predict(image, PROMPTS[1])
    return {"first_s": first, "second_s": time.perf_counter() - start}


def run_worker(*args: str) -> dict:
    output = subprocess.run([sys.executable, __file__, "--worker", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["vit_b:swin_t", "vit_h:swin_b"], help="SAM:detector pairs")
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "PAIR", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        implementation, pair, dtype = args.worker
        sam_type, detector_size = pair.split(":")
        result = reference_run(sam_type, detector_size) if implementation == "reference" else lang_sam_run(sam_type, detector_size, dtype)
        print(json.dumps(result))
        return

    print(f"machine: {describe_cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}; top {TOP_BOXES} boxes")
    skip_bf16 = bf16_skip_reason()
    if skip_bf16:
        print(skip_bf16)
    dtypes = ("float32",) if skip_bf16 else ("float32", "bfloat16")
    for pair in args.pairs:
        reference = run_worker("reference", pair, "float32")
        ours = {dtype: run_worker("lang_sam", pair, dtype) for dtype in dtypes}
        print(f"\n== {pair}: predict on a 1024x768 photo (s)")
        print(f"{'':26}{'reference v1':>14}" + "".join(f"{'lang_sam ' + DTYPE_NAMES[d]:>15}" for d in dtypes))
        for key, label in (("first_s", "first prompt"), ("second_s", "second prompt, same image")):
            print(f"{label:26}{reference[key]:>14.2f}" + "".join(f"{ours[d][key]:>15.2f}" for d in dtypes))
        for key, label in (("first_s", "first prompt"), ("second_s", "second prompt")):
            print(f"speed-up, {label}: " + ", ".join(f"{DTYPE_NAMES[d]} {reference[key] / ours[d][key]:.2f}x" for d in dtypes))

if __name__ == "__main__":
    main()
