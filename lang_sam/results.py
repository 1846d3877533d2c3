"""LangSAMResult: the Detections of one image in lang-segment-anything's shape (the v1 tuple, the
v0.2.x dicts and today's attribute names), converting to and from Detections without copying
arrays, and the exports every result has (supervision Detections, COCO RLE, JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from lang_sam.vocabulary import Detections

LOW_RES_KEY = "low_res_logits"  # Detections.data keys of what only LangSAM's results carry
CANDIDATES_KEY = "candidates"
CANDIDATE_SCORES_KEY = "candidate_scores"


@dataclass
class LangSAMResult:
    """Detections and masks in one image, highest score first, in lang-segment-anything's shape:
    ``LangSAMResult.of(detections)`` makes one of Detections and ``result.detections`` gives them back
    (checked again; the arrays are shared, not copied).

    Code written for lang-segment-anything runs unchanged: it unpacks and indexes like v1's
    ``masks, boxes, phrases, logits`` and reads like v0.2.x's dicts (``result["masks"]``); the
    number of detections is ``num_detections``.
    masks: (N, H, W) bool; boxes: (N, 4) float32 pixel xyxy; phrases: N class names; logits: (N,)
    detection scores (1.0 for your own boxes and clicks); mask_scores: (N,) SAM's predicted mask IoU;
    class_ids: (N,) into classes; low_res_logits: (N, 256, 256) SAM's logits, for refinement.
    """

    masks: np.ndarray
    boxes: np.ndarray
    phrases: list[str]
    logits: np.ndarray
    mask_scores: np.ndarray
    class_ids: np.ndarray
    classes: list[str]
    image_size: tuple[int, int] = field(default=(0, 0))
    # (N, 256, 256) SAM's low-res logits of each mask: pass one as mask_input to refine that object
    low_res_logits: np.ndarray = field(default_factory=lambda: np.zeros((0, 256, 256), np.float32), repr=False)
    # with multimask output: (N, 3, H, W) SAM's three candidates of each object and (N, 3) their predicted
    # IoU (masks holds the best); an object decoded with the single-mask output has it first, then
    # empty masks scored NaN. None when no object was decoded with multimask output.
    candidates: np.ndarray | None = field(default=None, repr=False)
    candidate_scores: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def of(cls, detections: Detections) -> LangSAMResult:
        """The result holding these Detections' arrays (not copies); they need masks, mask scores and
        class ids, as LangSAM makes them."""
        data = detections.data
        return cls(
            masks=detections.dense_masks(), boxes=detections.xyxy, phrases=detections.labels, logits=detections.box_scores,
            mask_scores=detections.mask_scores, class_ids=detections.class_ids, classes=list(detections.classes),
            image_size=detections.image_size,
            low_res_logits=data.get(LOW_RES_KEY, np.zeros((0, 256, 256), np.float32)),
            candidates=data.get(CANDIDATES_KEY), candidate_scores=data.get(CANDIDATE_SCORES_KEY),
        )

    @property
    def detections(self) -> Detections:
        """These objects as Detections (checked; the arrays are shared, not copied)."""
        data = {}
        if len(self.low_res_logits) == len(self.phrases):
            data[LOW_RES_KEY] = self.low_res_logits
        if self.candidates is not None:
            data[CANDIDATES_KEY], data[CANDIDATE_SCORES_KEY] = self.candidates, self.candidate_scores
        return Detections(
            xyxy=self.boxes, image_size=tuple(self.masks.shape[1:]), masks=self.masks, box_scores=self.logits,
            mask_scores=self.mask_scores, class_ids=self.class_ids, classes=tuple(self.classes), data=data,
        )

    # lang-segment-anything v1: ``masks, boxes, phrases, logits = model.predict(image, text)``, and
    # result[0] .. result[3]: a sequence of those four, whatever the number of detections.
    def __iter__(self):
        return iter(self._as_v1())

    def __len__(self) -> int:
        return 4

    def __getitem__(self, key: int | slice | str):
        """result[0] .. result[3] as v1 unpacks; result["masks"], ["boxes"], ["scores"], ["labels"],
        ["mask_scores"] as lang-segment-anything v0.2.x's per-image dicts."""
        if isinstance(key, str):
            v02 = self._as_v02()
            if key not in v02:
                raise KeyError(f"{key!r}: a result has the keys {', '.join(v02)} (and the attributes of LangSAMResult)")
            return v02[key]
        return self._as_v1()[key]

    def keys(self) -> list[str]:
        return list(self._as_v02())

    @property
    def num_detections(self) -> int:
        """How many objects were found (len() is 4, the length of the v1 tuple)."""
        return len(self.phrases)

    def _as_v1(self) -> tuple:
        return (self.masks, self.boxes, self.phrases, self.logits)

    def _as_v02(self) -> dict:
        return {"masks": self.masks, "boxes": self.boxes, "scores": self.logits, "labels": self.phrases, "mask_scores": self.mask_scores}

    def to_supervision(self):
        """supervision.Detections with masks, class ids, confidences, class names and mask scores, and no
        metadata (as lang-sam has always given it, so that supervision's merge joins any of them)."""
        converted = replace(self.detections, data={}).to_supervision()
        converted.metadata = {}
        return converted

    def to_coco_rle(self) -> list[dict]:
        """COCO RLE of each mask (size [H, W], counts as a string), as pycocotools reads them."""
        return encode_rles(self.masks)

    def to_json(self) -> dict:
        """Image size, then per detection: label, score, mask score, box and COCO RLE mask, and with
        multimask output "candidates": SAM's masks of that object with their mask scores."""
        height, width = self.image_size
        detections = _records(self.phrases, self.logits, self.mask_scores, self.boxes, self.to_coco_rle())
        if self.candidates is not None:
            for detection, masks, scores in zip(detections, self.candidates, self.candidate_scores):
                decoded = np.isfinite(scores)  # an object decoded with the single-mask output has one
                detection["candidates"] = [
                    {"mask_score": round(float(score), 6), "mask": rle}
                    for score, rle in zip(scores[decoded], encode_rles(masks[decoded]))
                ]
        return {"image": {"height": height, "width": width}, "detections": detections}

    @classmethod
    def from_json(cls, payload: dict) -> LangSAMResult:
        """The result that to_json wrote (as the CLI and the server send it), masks decoded from RLE."""
        from pycocotools import mask as mask_utils

        height, width = payload["image"]["height"], payload["image"]["width"]
        detections = payload["detections"]
        classes = list(dict.fromkeys(d["label"] for d in detections))
        rles = [{"size": d["mask"]["size"], "counts": d["mask"]["counts"].encode("ascii")} for d in detections]
        masks = mask_utils.decode(rles).transpose(2, 0, 1).astype(bool) if rles else np.zeros((0, height, width), bool)
        candidates = candidate_scores = None
        if any("candidates" in d for d in detections):
            candidates = np.zeros((len(detections), 3, height, width), bool)
            candidate_scores = np.full((len(detections), 3), np.nan, np.float32)
            for index, detection in enumerate(detections):
                for slot, candidate in enumerate(detection.get("candidates", [])):
                    candidates[index, slot] = decode_rle(candidate["mask"])
                    candidate_scores[index, slot] = candidate["mask_score"]
        return cls(
            masks=masks,
            boxes=np.array([d["box"] for d in detections], dtype=np.float32).reshape(-1, 4),
            phrases=[d["label"] for d in detections],
            logits=np.array([d["score"] for d in detections], dtype=np.float32),
            mask_scores=np.array([d["mask_score"] for d in detections], dtype=np.float32),
            class_ids=np.array([classes.index(d["label"]) for d in detections], dtype=np.int64),
            classes=classes,
            image_size=(height, width),
            candidates=candidates,
            candidate_scores=candidate_scores,
        )


def encode_rles(masks: np.ndarray) -> list[dict]:
    """COCO RLE of each (H, W) mask of masks (N, H, W), counts as a string (as the JSON exports hold them)."""
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")} for rle in encoded]


def detection_records(found: Detections) -> list[dict]:
    """LangSAMResult.of(found).to_json()["detections"] of detections with compact masks (a tiled
    run's, no candidates), each RLE encoded from its mask's crop: never an image-sized mask."""
    masks = found.compact().masks
    rles = [encode_crop_rle(masks.crop(index), *(int(v) for v in masks.offsets[index]), found.image_size) for index in range(len(found))]
    return _records(found.labels, found.box_scores, found.mask_scores, found.xyxy, rles)


def encode_crop_rle(crop: np.ndarray, left: int, top: int, image_size: tuple[int, int]) -> dict:
    """encode_rles' RLE of the (H, W) mask that is crop (h, w) at (left, top) and empty elsewhere,
    from the crop alone: COCO runs go column by column, so they change only where a crop column
    changes value (a zero row above and below it), two changes at one pixel cancelling (a column's
    run reaching the image's bottom that the next one's continues from its top)."""
    from pycocotools import mask as mask_utils

    height, width = image_size
    padded = np.zeros((crop.shape[0] + 2, crop.shape[1]), bool)
    padded[1:-1] = crop
    rows, columns = np.nonzero(padded[1:] != padded[:-1])
    positions, times = np.unique((left + columns.astype(np.int64)) * height + top + rows, return_counts=True)
    changes = positions[(times % 2 == 1) & (positions < height * width)]  # the image's end is no change
    runs = np.diff(np.concatenate([[0], changes, [height * width]]))
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": runs.tolist()}, height, width)
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _records(labels, scores, mask_scores, boxes, rles) -> list[dict]:
    """to_json's detections: label, score, mask score, box and COCO RLE mask of each object."""
    return [
        {
            "label": label,
            "score": round(float(score), 6),
            "mask_score": round(float(mask_score), 6),
            "box": [round(float(v), 3) for v in box],
            "mask": rle,
        }
        for label, score, mask_score, box, rle in zip(labels, scores, mask_scores, boxes, rles)
    ]


def decode_rle(rle: dict) -> np.ndarray:
    """The (H, W) bool mask of a COCO RLE whose counts are a string (encode_rles' form)."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)
