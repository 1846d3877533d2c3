"""Segment-everything mode: the automatic mask generator's records named, drawn and exported.

The generator itself is segment-anything's, in ``lang_sam.segmenter.automatic_mask_generator``,
run on any promptable segmenter (SAM v1, SAM 2.1, SAM-HQ); this module names its masks (optional:
the class that holds most of each mask's pixels in a universal model's semantic map, as Semantic
Segment Anything does) and turns the records (with binary masks) into what users keep: a drawing
where each mask has its own colour, and JSON with COCO RLE masks and every record field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from lang_sam.geometry import mask_to_box
from lang_sam.results import decode_rle, encode_rles

RECORD_FIELDS = ("area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box")
LABEL_FIELDS = ("label", "label_share")
OBJECT = "object"  # the class of every mask when no universal model names them


def name_masks(records: list[dict[str, Any]], image: np.ndarray, segmenter) -> list[dict[str, Any]]:
    """The records with "label" (the class of a UniversalSegmenter's semantic map holding most of
    the mask's pixels) and "label_share" (the share of the mask's pixels of that class)."""
    from lang_sam.families.universal import vote_labels

    if not records:
        return []
    class_map = segmenter.semantic_map(image)
    winners, shares = vote_labels(np.stack([r["segmentation"] for r in records]), class_map)
    return [{**record, "label": segmenter.labels[int(winner)], "label_share": round(float(share), 6)}
            for record, winner, share in zip(records, winners, shares)]


def everything_json(records: list[dict[str, Any]], image_size: tuple[int, int]) -> dict[str, Any]:
    """Image size, then per mask (largest first, as drawn): its COCO RLE and the record's fields."""
    height, width = image_size
    masks = []
    for record in sorted(records, key=lambda r: -r["area"]):
        masks.append({"segmentation": encode_rles(record["segmentation"][None])[0],
                      **{name: record[name] for name in RECORD_FIELDS + LABEL_FIELDS if name in record}})
    return {"image": {"height": height, "width": width}, "masks": masks}


def records_from_json(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The records that everything_json wrote (as the server answers), masks decoded from RLE."""
    return [{**written, "segmentation": decode_rle(written["segmentation"])} for written in payload["masks"]]


def draw_everything(image: np.ndarray, records: list[dict[str, Any]]) -> np.ndarray:
    """(H, W, 3) uint8 drawing: every mask filled in its own colour, largest first so that the
    small ones stay visible, with its outline, and its label when the masks were named. The input
    is never changed."""
    import supervision as sv

    scene = Image.fromarray(image.copy())
    if not records:
        return np.asarray(scene)
    ordered = sorted(records, key=lambda r: -r["area"])
    masks = np.stack([r["segmentation"] for r in ordered])
    detections = sv.Detections(xyxy=sv.mask_to_xyxy(masks).astype(np.float32), mask=masks,
                               class_id=np.arange(len(ordered)))
    scene = sv.MaskAnnotator(opacity=0.5, color_lookup=sv.ColorLookup.INDEX).annotate(scene, detections)
    scene = sv.PolygonAnnotator(thickness=1, color_lookup=sv.ColorLookup.INDEX).annotate(scene, detections)
    if all("label" in r for r in ordered):
        labels = [f"{r['label']} {r['label_share']:.2f}" for r in ordered]
        scene = sv.LabelAnnotator(text_scale=0.4, text_padding=2, color_lookup=sv.ColorLookup.INDEX,
                                  text_position=sv.Position.CENTER_OF_MASS).annotate(scene, detections, labels=labels)
    return np.asarray(scene)


class EverythingLabeler:
    """The models of segment-everything mode (``lang-sam everything``, and ``label --everything`` in
    place of LangSAM): records of an image, named when a universal model is set; for labeling,
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

    def records(self, image: np.ndarray, progress=None) -> list[dict[str, Any]]:
        """The generator's records of an image (progress: generate's callback), named if a namer is set."""
        records = self.generator.generate(image, progress=progress)
        return name_masks(records, image, self.namer) if self.namer is not None else records

    def label(self, image: np.ndarray) -> dict[str, Any]:
        """{"image": size, "detections": [...]} for one prepared image, largest mask first."""
        records = self.records(image)
        detections = []
        for record in sorted(records, key=lambda r: -r["area"]):
            box = mask_to_box(record["segmentation"])  # pixel-edge xyxy, as every lang-sam box (not the record's inclusive bbox)
            detections.append({"label": record.get("label", OBJECT), "score": round(record["predicted_iou"], 6),
                               "mask_score": round(record["stability_score"], 6), "box": [round(float(v), 3) for v in box],
                               "mask": encode_rles(record["segmentation"][None])[0]})
        return {"image": {"height": image.shape[0], "width": image.shape[1]}, "detections": detections}
