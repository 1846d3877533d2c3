"""Text-prompted segmentation as a composition: LangSAM (langsam.py) runs the models it holds
(models.py: a segmenter with its embeddings and a detector, cache.py) over PreparedImages
(prepared.py), turns boxes and clicks into ObjectPrompts (prompts.py) and decodes them into
Detections (segment.py); lang-segment-anything's argument names live in compat.py."""

from lang_sam.pipeline.cache import EmbeddingCache
from lang_sam.pipeline.langsam import LangSAM
from lang_sam.pipeline.prepared import PreparedImage, image_key
from lang_sam.pipeline.prompts import UserPrompts, check_user_prompts

__all__ = ["EmbeddingCache", "LangSAM", "PreparedImage", "UserPrompts", "check_user_prompts", "image_key"]
