"""PreparedImage: an image decoded and resized for a pipeline's models, named by its content."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from lang_sam.families.base import Segmenter, TextSegmenter


@dataclass(frozen=True)
class PreparedImage:
    """An image decoded and resized for both models (LangSAM.prepare), which predict accepts in
    place of the image: preparing the next images in other threads keeps the models busy.

    segmenter_input: what the segmenter's preprocess made (SAM v1: the pixels resized to longest
    side 1024; SAM 3: its processor's pixels); family: the segmenter family it was made for; detector_input: the detector's pixels (None when only the segmenter will see the image, as
    in embed); key: image_key, names the image in the embedding cache.
    """

    original_size: tuple[int, int]
    segmenter_input: Any
    family: str
    detector_input: Any | None
    key: str


def prepare_for_segmenter(segmenter: Segmenter | TextSegmenter, array: np.ndarray) -> PreparedImage:
    """PreparedImage without the detector's pixels, for what only the segmenter sees (embed, clicks
    alone, a text segmenter)."""
    return PreparedImage(array.shape[:2], segmenter.preprocess(array), segmenter.family, None, image_key(array))


def image_key(array: np.ndarray) -> str:
    """The content hash (pixels and shape) that names an image in the embedding caches."""
    return hashlib.blake2b(array.tobytes(), digest_size=16, key=repr(array.shape).encode()).hexdigest()
