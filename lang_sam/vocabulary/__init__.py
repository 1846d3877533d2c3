"""The words every layer of lang-sam speaks, on the ground floor (it imports nothing of lang-sam but
its errors), so that the library, the CLI, the app and the server check, default and return them one way.

- Thresholds (thresholds.py): what a detection keeps, its defaults written once.
- ObjectPrompt (prompts.py): one object for a promptable segmenter (a box, points, a mask, or a mix);
  Exemplars: boxes around examples of a concept for SAM 3 ("more like this").
- Detections (detections.py): the objects found in one image, shaped like supervision's; a compact
  mask of any size decoded and built a column strip at a time (strips.py).
- SegmenterInput, ImageEmbedding, MaskSet (embedding.py): a promptable segmenter's input, an
  image's embedding, and the raw (B prompts x M candidates) answer of one batched decode.
"""

from lang_sam.vocabulary.detections import Detections, compact_masks
from lang_sam.vocabulary.embedding import ImageEmbedding, MaskSet, SegmenterInput
from lang_sam.vocabulary.prompts import Exemplars, ObjectPrompt
from lang_sam.vocabulary.thresholds import (
    BOX_THRESHOLD,
    TEXT_THRESHOLD,
    Thresholds,
    check_max_lost,
    check_threshold,
)

__all__ = [
    "BOX_THRESHOLD",
    "TEXT_THRESHOLD",
    "Detections",
    "Exemplars",
    "ImageEmbedding",
    "MaskSet",
    "ObjectPrompt",
    "SegmenterInput",
    "Thresholds",
    "check_max_lost",
    "check_threshold",
    "compact_masks",
]
