"""Labelled drawings of LangSAM results with supervision's annotators."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lang_sam.io.images import ImageInput, load_image
from lang_sam.results import LangSAMResult


def draw_image(image: ImageInput, result: LangSAMResult) -> np.ndarray:
    """(H, W, 3) uint8 RGB drawing: masks, boxes and labels such as "car 0.87", one colour per
    class. The input is never changed; with nothing detected the image comes back as it was."""
    import supervision as sv

    pixels = load_image(image)
    if pixels.shape[:2] != tuple(result.image_size):
        raise ValueError(f"The result is for an image of size {result.image_size}, not {pixels.shape[:2]}.")
    # supervision reads a PIL image as RGB (a numpy array would be taken as OpenCV's BGR).
    scene = Image.fromarray(pixels.copy())
    if result.num_detections == 0:
        return np.asarray(scene)
    detections = result.to_supervision()
    labels = [f"{label} {score:.2f}" for label, score in zip(result.phrases, result.logits)]
    scene = sv.MaskAnnotator(opacity=0.45).annotate(scene, detections)
    scene = sv.BoxAnnotator(thickness=2).annotate(scene, detections)
    scene = sv.LabelAnnotator(text_scale=0.5, text_padding=4, smart_position=True).annotate(scene, detections, labels=labels)
    return np.asarray(scene)
