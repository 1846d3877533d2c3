"""Capabilities: what an adapter class can run, as class attributes, so the registry's users and the
README's model table read them without loading weights (lang_sam.families.table). On the ground
floor because adapters on two floors declare them: SAM v1's in segmenter/, the rest in families/."""

from __future__ import annotations

from typing import ClassVar


class Capabilities:
    """What an adapter class can run, readable without loading weights (class attributes): each
    False here, set True by the adapters that run it; why_not says, for each it cannot, why (the
    README's model table shows it, lang_sam.families.table).

    text_via_detector: segments a detector's boxes (LangSAM with a detector); takes_text: segments
    class names itself, with no detector; takes_clicks_and_boxes: point and box prompts;
    segments_everything: masks of everything on a point grid; tracks_video: through a video;
    exports_onnx: lang-sam export-onnx; fine_tunes: lang-sam finetune.
    """

    text_via_detector: ClassVar[bool] = False
    takes_text: ClassVar[bool] = False
    takes_clicks_and_boxes: ClassVar[bool] = False
    segments_everything: ClassVar[bool] = False
    tracks_video: ClassVar[bool] = False
    exports_onnx: ClassVar[bool] = False
    fine_tunes: ClassVar[bool] = False
    why_not: ClassVar[dict[str, str]] = {}


# what a promptable segmenter other than SAM v1 cannot do, and why
NOT_ONNX = "lang-sam export-onnx writes SAM v1's mask decoder"
NOT_FINE_TUNED = "lang-sam finetune trains SAM v1's mask decoder"
NO_TEXT = "takes boxes and points; a detector turns text into boxes"
NO_VIDEO = "lang-sam tracks video with SAM 2.1, EdgeTAM and SAM 3"
