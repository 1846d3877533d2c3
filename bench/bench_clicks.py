"""Click-to-mask latency: LangSAM.predict with clicks on an image whose embedding is cached (what
the app's Clicks tab runs per click), vit_b random weights, one run.

    python bench/bench_clicks.py                # vit_b

Prints the first click (it encodes the image) and the median of later clicks (1 to 5 points,
object and background), and the same decode alone through SamPredictor for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import numpy as np
import torch

from bench_sam import test_image  # this folder is on the path when run as a script
from lang_sam.devices import describe_cpu
from lang_sam.registry import SAM_MODELS
from lang_sam.segmenter.build import build_sam_from_architecture
from lang_sam.segmenter.predictor import SamPredictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="vit_b", choices=list(SAM_MODELS))
    parser.add_argument("--clicks", type=int, default=10)
    args = parser.parse_args()
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection, GroundingDinoImageProcessor

    from lang_sam.detector import GroundingDinoDetector
    from lang_sam.pipeline import LangSAM

    print(f"machine: {describe_cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    torch.manual_seed(0)
    sam = build_sam_from_architecture(SAM_MODELS[args.size].architecture).eval()
    # clicks alone never run the detector: a small random one stands in for it
    config = GroundingDinoConfig(d_model=32, encoder_layers=1, decoder_layers=2, num_queries=10,
                                 backbone_config={"model_type": "swin", "embed_dim": 16, "depths": [1, 1, 1, 1],
                                                  "num_heads": [1, 1, 1, 1], "out_features": ["stage2", "stage3", "stage4"]})
    processor = SimpleNamespace(image_processor=GroundingDinoImageProcessor())  # prepare() resizes for it; no text is tokenised
    detector = GroundingDinoDetector.from_parts(GroundingDinoForObjectDetection(config), processor, device="cpu", dtype="float32")
    model = LangSAM.from_parts(sam, detector, args.size)
    image = test_image()
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    model.predict(image, points=[[500, 375]])
    first = time.perf_counter() - started
    later = []
    for click in range(args.clicks):
        count = 1 + click % 5
        points = rng.uniform([0, 0], [image.shape[1], image.shape[0]], (count, 2))
        labels = [1] + [int(v) for v in rng.integers(0, 2, count - 1)]
        started = time.perf_counter()
        model.predict(image, points=points, point_labels=labels)
        later.append(time.perf_counter() - started)
    predictor = SamPredictor(sam)
    predictor.set_embedding(model.embeddings.get_or_encode(model.prepare(image).key, lambda: None))
    decode = []
    for _ in range(args.clicks):
        started = time.perf_counter()
        predictor.predict(point_coords=np.array([[500.0, 375.0]]), point_labels=np.array([1]))
        decode.append(time.perf_counter() - started)
    print(f"== {args.size}, 1024x768 photo")
    print(f"first click (encodes the image): {first:.2f} s")
    print(f"later clicks, LangSAM.predict: median {statistics.median(later) * 1000:.0f} ms (max {max(later) * 1000:.0f} ms)")
    print(f"SamPredictor.predict alone: median {statistics.median(decode) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
