"""SAM in ONNX: onnxruntime (CPU provider) against PyTorch for the image encoder and the prompt
decoder, same random weights, one run.

    python bench/bench_onnx.py                 # vit_b

Prints the encoder time (fp32) and the decoder time per click (fp32, and the int8 quantized
decoder) on a 1024x768 photo, medians of a few runs after a warm-up. Needs the onnx extra.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench_sam import test_image, timed  # this folder is on the path when run as a script
from lang_sam.devices import describe_cpu
from lang_sam.registry import SAM_MODELS
from lang_sam.segmenter import SamPredictor, processing
from lang_sam.segmenter.build import build_sam_from_architecture
from lang_sam.segmenter.onnx import export_onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="vit_b", choices=["vit_b", "vit_l"], help="vit_h's encoder is over ONNX's 2 GB limit")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import onnxruntime

    print(f"machine: {describe_cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"onnxruntime {onnxruntime.__version__}")
    torch.manual_seed(0)
    sam = build_sam_from_architecture(SAM_MODELS[args.size].architecture).eval()
    image = test_image()
    predictor = SamPredictor(sam)
    with tempfile.TemporaryDirectory() as folder:
        export_onnx(sam, Path(folder), quantize=True, encoder=True)
        sessions = {name: onnxruntime.InferenceSession(str(Path(folder) / f"{name}.onnx"), providers=["CPUExecutionProvider"])
                    for name in ("encoder", "decoder", "decoder_quantized")}
        resized = processing.resize_image(image)
        encoder_torch = timed(lambda: predictor.set_image(image), args.repeats)
        encoder_onnx = timed(lambda: sessions["encoder"].run(None, {"input_image": resized}), args.repeats)
        embedding = predictor.features.numpy()
        click = processing.transform_coords(np.array([[500.0, 375.0], [0.0, 0.0]]), image.shape[:2])[None].astype(np.float32)
        feed = {"image_embeddings": embedding, "point_coords": click, "point_labels": np.array([[1, -1]], np.float32),
                "mask_input": np.zeros((1, 1, 256, 256), np.float32), "has_mask_input": np.array([0], np.float32),
                "orig_im_size": np.array(image.shape[:2], np.float32)}
        decoder_torch = timed(lambda: predictor.predict(point_coords=np.array([[500.0, 375.0]]), point_labels=np.array([1])),
                              max(args.repeats, 5))
        decoder_onnx = timed(lambda: sessions["decoder"].run(None, feed), max(args.repeats, 5))
        decoder_int8 = timed(lambda: sessions["decoder_quantized"].run(None, feed), max(args.repeats, 5))
    print(f"== {args.size}, 1024x768 photo")
    print(f"image encoder (s):   PyTorch {encoder_torch:.3f}   onnxruntime {encoder_onnx:.3f}   ({encoder_torch / encoder_onnx:.2f}x)")
    print(f"decoder, 1 click (s): PyTorch {decoder_torch:.4f}   onnxruntime {decoder_onnx:.4f}   int8 {decoder_int8:.4f}")


if __name__ == "__main__":
    main()
