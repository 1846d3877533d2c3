"""Segment-everything mode: the automatic mask generator's Detections named, drawn and exported.

The generator itself is segment-anything's, in ``lang_sam.segmenter.automatic_mask_generator``,
run on any promptable segmenter (SAM v1, SAM 2.1, SAM-HQ); ``segment_everything`` is lang-sam's
entry: the generator's masks as Detections, named when a universal model is given (the class that
holds most of each mask's pixels in its semantic map, as Semantic Segment Anything does). This
module turns them into what users keep: a drawing where each mask has its own colour, and JSON
with COCO RLE masks and segment-anything's record fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image

from lang_sam.results import decode_rle, encode_rles
from lang_sam.segmenter.automatic_mask_generator import OBJECT
from lang_sam.vocabulary.detections import Detections

__all__ = ["OBJECT", "EverythingLabeler", "draw_everything", "everything_json", "name_detections", "records_from_json",
           "segment_everything"]

LABEL_SHARE = "label_share"  # data key of named detections: the share of the mask's pixels of its class


def segment_everything(image: np.ndarray, generator, namer=None,
                       progress: Callable[[int, int], None] | None = None) -> Detections:
    """The generator's masks of an (H, W, 3) uint8 image as Detections (its order and fields, see
    candidates_to_detections), named by namer (a UniversalSegmenter) when given. progress: generate's."""
    found = generator.detections(image, progress=progress)
    return found if namer is None else name_detections(found, image, namer)


def name_detections(detections: Detections, image: np.ndarray, segmenter) -> Detections:
    """The detections with the classes of a UniversalSegmenter: each mask's class the one of its
    semantic map holding most of the mask's pixels, data["label_share"] (N,) float64 that share,
    rounded to 6 decimals as the JSON has always written it."""
    from lang_sam.families.universal import vote_labels

    if not len(detections):
        return detections
    winners, shares = vote_labels(detections.dense_masks(), segmenter.semantic_map(image))
    return replace(detections, class_ids=np.asarray(winners, dtype=np.int64), classes=tuple(segmenter.labels),
                   data={**detections.data, LABEL_SHARE: np.array([round(float(share), 6) for share in shares])})


def largest_first(detections: Detections) -> Detections:
    """The detections ordered by mask area, largest first (ties kept in their order), as drawn and written."""
    return detections[np.argsort(-detections.data["area"], kind="stable")]


def everything_json(detections: Detections) -> dict[str, Any]:
    """Image size, then per mask (largest first, as drawn): its COCO RLE and segment-anything's
    record fields (bbox XYWH inclusive), with label and label_share when the masks were named."""
    height, width = detections.image_size
    ordered = largest_first(detections)
    return {"image": {"height": height, "width": width},
            "masks": [_written(ordered, index) for index in range(len(ordered))]}


def _written(detections: Detections, index: int) -> dict[str, Any]:
    """One mask of everything_json: the fields of segment-anything's record, in its order."""
    data = detections.data
    x0, y0, x1, y1 = (int(value) for value in detections.xyxy[index])
    area = int(data["area"][index])
    written = {
        "segmentation": encode_rles(np.asarray(detections.masks[index])[None])[0],
        "area": area,
        "bbox": [x0, y0, x1 - x0 - 1, y1 - y0 - 1] if area else [0, 0, 0, 0],  # segment-anything's inclusive box
        "predicted_iou": float(detections.mask_scores[index]),
        "point_coords": [data["point_coords"][index].tolist()],
        "stability_score": float(data["stability_score"][index]),
        "crop_box": data["crop_box"][index].tolist(),
    }
    if LABEL_SHARE in data:
        written.update(label=detections.labels[index], label_share=float(data[LABEL_SHARE][index]))
    return written


def records_from_json(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The records that everything_json wrote (as the server answers), masks decoded from RLE."""
    return [{**written, "segmentation": decode_rle(written["segmentation"])} for written in payload["masks"]]


def draw_everything(image: np.ndarray, detections: Detections) -> np.ndarray:
    """(H, W, 3) uint8 drawing: every mask filled in its own colour, largest first so that the
    small ones stay visible, with its outline, and its label when the masks were named. The input
    is never changed."""
    import supervision as sv

    scene = Image.fromarray(image.copy())
    if not len(detections):
        return np.asarray(scene)
    ordered = largest_first(detections)
    masks = ordered.dense_masks()
    drawn = sv.Detections(xyxy=sv.mask_to_xyxy(masks).astype(np.float32), mask=masks, class_id=np.arange(len(ordered)))
    scene = sv.MaskAnnotator(opacity=0.5, color_lookup=sv.ColorLookup.INDEX).annotate(scene, drawn)
    scene = sv.PolygonAnnotator(thickness=1, color_lookup=sv.ColorLookup.INDEX).annotate(scene, drawn)
    if LABEL_SHARE in ordered.data:
        labels = [f"{label} {share:.2f}" for label, share in zip(ordered.labels, ordered.data[LABEL_SHARE])]
        scene = sv.LabelAnnotator(text_scale=0.4, text_padding=2, color_lookup=sv.ColorLookup.INDEX,
                                  text_position=sv.Position.CENTER_OF_MASS).annotate(scene, drawn, labels=labels)
    return np.asarray(scene)


class EverythingLabeler:
    """The models of segment-everything mode (``lang-sam everything``, and ``label --everything`` in
    place of LangSAM): Detections of an image, named when a universal model is set; for labeling,
    prepare (decode) an image, then its masks as label records (LangSAMResult.to_json's detections:
    label, score = predicted IoU, mask_score = stability score, pixel-edge xyxy box of the mask, COCO RLE mask). Labels:
    the universal model's vote, or "object"."""

    def __init__(self, generator, namer=None, description: str = "") -> None:
        self.generator = generator
        self.namer = namer
        self.description = description  # what runs: SAM name, device, dtype, naming model

    @classmethod
    def from_settings(cls, settings, generator_options: dict[str, Any], semantic: str | None = None) -> EverythingLabeler:
        """The generator on the segmenter of settings (sam_type / sam_checkpoint: SAM v1, SAM 2.1 or
        SAM-HQ; SAM 3 is refused by the generator), named by the universal model semantic if given."""
        from lang_sam.devices import resolve_device, resolve_dtype
        from lang_sam.families.loading import load_segmenter
        from lang_sam.segmenter import SamAutomaticMaskGenerator

        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype, device)
        segmenter = load_segmenter(settings.sam_type, settings.sam_checkpoint, device, dtype, settings.checkpoint_dir)
        generator = SamAutomaticMaskGenerator(segmenter, **generator_options)
        namer = None
        if semantic:
            from lang_sam.families.universal import UniversalSegmenter

            namer = UniversalSegmenter(semantic, device=device, dtype=dtype)
        description = f"SAM {segmenter.name} on {device.type}, {str(dtype).removeprefix('torch.')}" + (
            f", masks named by {semantic}" if semantic else "")
        return cls(generator, namer, description)

    def prepare(self, image) -> np.ndarray:
        from lang_sam.io.images import load_image

        return load_image(image)

    def detections(self, image: np.ndarray, progress=None) -> Detections:
        """segment_everything of an image on this generator and namer (progress: generate's callback)."""
        return segment_everything(image, self.generator, self.namer, progress)

    def label(self, image: np.ndarray) -> dict[str, Any]:
        """{"image": size, "detections": [...]} for one prepared image, largest mask first."""
        found = largest_first(self.detections(image))
        detections = [
            {"label": label, "score": round(float(score), 6), "mask_score": round(float(stability), 6),
             "box": [round(float(v), 3) for v in box], "mask": encode_rles(np.asarray(found.masks[index])[None])[0]}
            for index, (label, score, stability, box) in enumerate(
                zip(found.labels, found.box_scores, found.data["stability_score"], found.xyxy))
        ]
        return {"image": {"height": image.shape[0], "width": image.shape[1]}, "detections": detections}
