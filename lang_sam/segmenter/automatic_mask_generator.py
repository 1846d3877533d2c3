"""Segment everything: any promptable Segmenter (SAM v1, SAM 2.1, SAM-HQ) prompted with a grid of
points, with segment-anything's constructor, defaults and records, computed in an order that does
less work.

The generator speaks only the Segmenter interface (lang_sam.families.base): per crop, preprocess and
embed once; per point batch, decode with multimask output and nothing upscaled, so the low-res
logits are filtered by predicted IoU before anything is taken to full resolution (the reference
upscales every mask first); the survivors go through upscale_logits a few at a time for the
stability score, boxes and RLE (pycocotools), so memory is bounded by points_per_batch, never by
points_per_side. The filters, their order and the NMS steps are the reference's, so on SAM v1 the
same weights give the same masks. Meta's Sam is taken as it is (the drop-in), wrapped in SamV1Segmenter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
import torch
from torchvision.ops import batched_nms

from lang_sam.errors import InvalidImageError, InvalidOptionError
from lang_sam.geometry import masks_to_boxes
from lang_sam.segmenter import processing
from lang_sam.segmenter.adapter import SamV1Segmenter
from lang_sam.segmenter.sam import Sam
from lang_sam.vocabulary.detections import Detections

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
EDGE_TOLERANCE = 20.0  # pixels: a box this close to a crop's inner edge was cut by the crop
UPSCALE_CHUNK = 16  # masks taken to full resolution at once
SEGMENTER_METHODS = ("preprocess", "embed", "decode", "upscale_logits")  # what the generator calls
OBJECT = "object"  # the one class of the generator's Detections (a universal model may name them later)


class SamAutomaticMaskGenerator:
    """segment-anything's SamAutomaticMaskGenerator over any promptable segmenter.

    model: Meta's Sam (this package's, any size and dtype), or any lang_sam.families.base.Segmenter
    (SAM v1, SAM 2.1, SAM-HQ as load_segmenter gives them); None checks the options alone (the CLI
    does, before a model loads). The other arguments and defaults are the reference's;
    ``generate(image)`` returns its records: segmentation (per output_mode), area, bbox (XYWH,
    inclusive), predicted_iou, point_coords, stability_score, crop_box (XYWH); ``detections(image)``
    the same masks as lang-sam's Detections.
    """

    def __init__(
        self,
        model: Sam | Any | None,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
    ) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise InvalidOptionError("Give exactly one of points_per_side and point_grids.")
        if points_per_side is not None and (not isinstance(points_per_side, int) or points_per_side < 1):
            raise InvalidOptionError(f"points_per_side must be a whole number >= 1, got {points_per_side!r}.")
        if not isinstance(points_per_batch, int) or points_per_batch < 1:
            raise InvalidOptionError(f"points_per_batch must be a whole number >= 1, got {points_per_batch!r}.")
        if not isinstance(crop_n_layers, int) or crop_n_layers < 0:
            raise InvalidOptionError(f"crop_n_layers must be a whole number >= 0, got {crop_n_layers!r}.")
        if not isinstance(crop_n_points_downscale_factor, int) or crop_n_points_downscale_factor < 1:
            raise InvalidOptionError(f"crop_n_points_downscale_factor must be a whole number >= 1, got {crop_n_points_downscale_factor!r}.")
        for name, value in (("pred_iou_thresh", pred_iou_thresh), ("stability_score_thresh", stability_score_thresh),
                            ("box_nms_thresh", box_nms_thresh), ("crop_nms_thresh", crop_nms_thresh),
                            ("crop_overlap_ratio", crop_overlap_ratio)):
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise InvalidOptionError(f"{name} must be between 0 and 1, got {value!r}.")
        if not isinstance(stability_score_offset, (int, float)) or stability_score_offset < 0:
            raise InvalidOptionError(f"stability_score_offset must be >= 0, got {stability_score_offset!r}.")
        if not isinstance(min_mask_region_area, (int, float)) or min_mask_region_area < 0:
            raise InvalidOptionError(f"min_mask_region_area must be >= 0, got {min_mask_region_area!r}.")
        if output_mode not in OUTPUT_MODES:
            raise InvalidOptionError(f"Unknown output_mode {output_mode!r}; use one of {', '.join(OUTPUT_MODES)}.")
        if point_grids is None:
            point_grids = layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        elif len(point_grids) != crop_n_layers + 1:
            raise InvalidOptionError(f"point_grids needs one grid per crop layer: {crop_n_layers + 1}, got {len(point_grids)}.")
        self.segmenter = None if model is None else as_segmenter(model)
        self.point_grids = [np.asarray(grid, dtype=np.float64).reshape(-1, 2) for grid in point_grids]
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode

    def generate(self, image: np.ndarray, progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
        """The masks of an (H, W, 3) uint8 RGB image, as segment-anything's records (see the class).
        progress, if given, is called with (point batches done, point batches in all) as the work goes on."""
        found = self._search(image, progress)
        return [self._record(found, index) for index in range(len(found))]

    def detections(self, image: np.ndarray, progress: Callable[[int, int], None] | None = None) -> Detections:
        """The masks of an (H, W, 3) uint8 RGB image as Detections, in generate's order (one object
        per record, whatever output_mode): see candidates_to_detections. progress: as generate's."""
        return candidates_to_detections(self._search(image, progress), image.shape[:2])

    @torch.inference_mode()
    def _search(self, image: np.ndarray, progress: Callable[[int, int], None] | None) -> Candidates:
        """The masks that pass every filter, in the reference's order."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            described = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise InvalidImageError(f"generate takes an (H, W, 3) uint8 RGB array, got a {described}.")
        if min(image.shape[:2]) < 1:
            raise InvalidImageError(f"The image is empty (shape {image.shape}).")
        height, width = image.shape[:2]
        crops = crop_boxes(height, width, self.crop_n_layers, self.crop_overlap_ratio)
        batches = [-(-len(self.point_grids[layer]) // self.points_per_batch) for _, layer in crops]
        found = Candidates()
        done = 0
        for (box, layer), count in zip(crops, batches):
            def step() -> None:
                nonlocal done
                done += 1
                if progress is not None:
                    progress(done, sum(batches))

            found.extend(self._crop_candidates(image, box, layer, step))
        if len(crops) > 1 and len(found):  # a mask found in several crops: keep the smallest crop's
            crop_areas = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in found.crop_boxes]
            found = found.select(_nms(found.boxes, 1.0 / torch.tensor(crop_areas, dtype=torch.float32), self.crop_nms_thresh))
        if self.min_mask_region_area > 0 and len(found):
            found = remove_small_regions(found, self.min_mask_region_area, max(self.box_nms_thresh, self.crop_nms_thresh))
        return found

    def _crop_candidates(self, image: np.ndarray, crop: list[int], layer: int, step: Callable[[], None]) -> Candidates:
        if self.segmenter is None:
            raise InvalidOptionError("This generator was made without a model (options only); give it a segmenter to generate.")
        x0, y0, x1, y1 = crop
        cropped = np.ascontiguousarray(image[y0:y1, x0:x1])
        crop_size = cropped.shape[:2]
        embedding = self.segmenter.embed(self.segmenter.preprocess(cropped))
        points = self.point_grids[layer] * np.array(crop_size)[None, ::-1]
        found = Candidates()
        for start in range(0, len(points), self.points_per_batch):
            found.extend(self._batch_candidates(embedding, points[start : start + self.points_per_batch], crop, image.shape[:2]))
            step()
        if not len(found):
            return found
        return found.select(_nms(found.boxes, torch.tensor(found.predicted_ious, dtype=torch.float32), self.box_nms_thresh))

    def _batch_candidates(self, embedding, points: np.ndarray, crop: list[int], image_size: tuple[int, int]) -> Candidates:
        """The masks of one batch of (P, 2) xy crop-pixel points that pass the filters, three per point at most."""
        coords = torch.as_tensor(points, dtype=torch.float64)[:, None, :]
        labels = torch.ones(len(points), 1, dtype=torch.int)
        decoded = self.segmenter.decode(embedding, coords, labels, multimask_output=True, upscale=False)
        low_res, iou = decoded.low_res_logits.flatten(0, 1), decoded.iou.flatten(0, 1)
        point_of_mask = np.repeat(points, 3, axis=0)
        keep = torch.nonzero(iou > self.pred_iou_thresh).flatten() if self.pred_iou_thresh > 0 else torch.arange(len(iou))
        found = Candidates()
        for chunk in keep.split(UPSCALE_CHUNK):
            logits = self.segmenter.upscale_logits(embedding, low_res[chunk, None])[:, 0]
            stability = stability_scores(logits, processing.MASK_THRESHOLD, self.stability_score_offset)
            stable = stability >= self.stability_score_thresh if self.stability_score_thresh > 0 else torch.ones_like(stability, dtype=torch.bool)
            masks = logits[stable] > processing.MASK_THRESHOLD
            if not len(masks):
                continue
            boxes = masks_to_boxes_inclusive(masks)
            cut = near_crop_edge(boxes, crop, image_size)
            masks, boxes = masks[~cut], boxes[~cut]
            indices = chunk[stable][~cut].cpu()
            found.extend(Candidates(
                rles=encode_masks(masks, crop, image_size),
                boxes=(boxes + torch.tensor([crop[0], crop[1], crop[0], crop[1]], device=boxes.device)).cpu(),
                predicted_ious=iou[indices].tolist(),
                stability_scores=stability[stable][~cut].tolist(),
                points=(point_of_mask[indices.numpy()] + [crop[0], crop[1]]).tolist(),
                crop_boxes=[list(crop)] * len(indices),
            ))
        return found

    def _record(self, found: Candidates, index: int) -> dict[str, Any]:
        from pycocotools import mask as mask_utils

        rle = found.rles[index]
        if self.output_mode == "binary_mask":
            segmentation: Any = mask_utils.decode(rle).astype(bool)
        elif self.output_mode == "coco_rle":
            segmentation = {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
        else:
            segmentation = uncompressed_rle(mask_utils.decode(rle).astype(bool))
        x0, y0, x1, y1 = found.boxes[index].tolist()
        cx0, cy0, cx1, cy1 = found.crop_boxes[index]
        return {
            "segmentation": segmentation,
            "area": int(mask_utils.area(rle)),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "predicted_iou": found.predicted_ious[index],
            "point_coords": [found.points[index]],
            "stability_score": found.stability_scores[index],
            "crop_box": [cx0, cy0, cx1 - cx0, cy1 - cy0],
        }


def candidates_to_detections(found: Candidates, image_size: tuple[int, int]) -> Detections:
    """The generator's masks as Detections of one class, OBJECT: masks a supervision CompactMask
    (transcoded from the COCO RLE the generator already holds, so hundreds of masks never stand as
    one (N, H, W) array), xyxy the masks' pixel-edge boxes (lang_sam.geometry's), mask_scores and
    box_scores both the predicted IoU (the only score of a mask with no box prompt: the labeling
    JSON's "score" has always been it), and data: "area" (N,) int64 pixels, "stability_score" (N,)
    float32, "point_coords" (N, 2) float64 image-pixel xy of the prompting point, "crop_box" (N, 4)
    int64 XYWH of the crop it was found in (the records' fields and frames, lossless)."""
    from pycocotools import mask as mask_utils
    from supervision.detection.compact_mask import CompactMask

    count = len(found)
    area = np.asarray(mask_utils.area(found.rles), dtype=np.int64).reshape(count)
    inclusive = found.boxes.numpy().astype(np.float32).reshape(count, 4)
    held = (area > 0)[:, None]
    crops = np.asarray(found.crop_boxes, dtype=np.int64).reshape(count, 4)
    iou = np.asarray(found.predicted_ious, dtype=np.float32)
    return Detections(
        xyxy=np.where(held, inclusive + [0, 0, 1, 1], 0),
        image_size=image_size,
        masks=CompactMask.from_coco_rle(found.rles, np.where(held, inclusive, [0, 0, -1, -1]), image_size),  # sv's inclusive boxes
        box_scores=iou, mask_scores=iou,
        class_ids=np.zeros(count, np.int64), classes=(OBJECT,),
        data={"area": area, "stability_score": np.asarray(found.stability_scores, dtype=np.float32),
              "point_coords": np.asarray(found.points, dtype=np.float64).reshape(count, 2),
              "crop_box": np.concatenate([crops[:, :2], crops[:, 2:] - crops[:, :2]], axis=1)},
    )


def as_segmenter(model: Sam | Any) -> Any:
    """The Segmenter the generator runs: Meta's Sam wrapped in SamV1Segmenter, a Segmenter that can
    segment everything (its capabilities, when it has them) as it is; anything else (a detector, SAM 3
    without its tracker) an InvalidOptionError saying why and what can."""
    if isinstance(model, Sam):
        return SamV1Segmenter(model, "sam")
    missing = [name for name in SEGMENTER_METHODS if not callable(getattr(model, name, None))]
    if missing:
        why = f"it takes no point prompts (no {', '.join(missing)})"
    elif not getattr(model, "takes_clicks_and_boxes", True):  # an adapter's capabilities; a Segmenter of your own has none
        why = "it takes no point prompts"
    elif not getattr(model, "segments_everything", True):
        why = model.why_not["segments_everything"]
    else:
        return model
    name = getattr(model, "name", type(model).__name__)
    raise InvalidOptionError(
        f"{name} cannot segment everything: {why}. Segment-everything runs on SAM v1, SAM 2.1, SAM-HQ, EdgeTAM and SAM 3 "
        "with its tracker (e.g. vit_b, sam2.1-hiera-tiny, edgetam, sam3).")


@dataclass
class Candidates:
    """Masks kept so far, as compressed COCO RLE in the whole image's frame, with their fields."""

    rles: list[dict] = field(default_factory=list)
    boxes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 4, dtype=torch.int64))  # xyxy, inclusive
    predicted_ious: list[float] = field(default_factory=list)
    stability_scores: list[float] = field(default_factory=list)
    points: list[list[float]] = field(default_factory=list)
    crop_boxes: list[list[int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rles)

    def extend(self, other: Candidates) -> None:
        self.rles += other.rles
        self.boxes = torch.cat([self.boxes, other.boxes.to(self.boxes.dtype)])
        self.predicted_ious += other.predicted_ious
        self.stability_scores += other.stability_scores
        self.points += other.points
        self.crop_boxes += other.crop_boxes

    def select(self, indices: list[int]) -> Candidates:
        return Candidates(
            [self.rles[i] for i in indices], self.boxes[indices], [self.predicted_ious[i] for i in indices],
            [self.stability_scores[i] for i in indices], [self.points[i] for i in indices], [self.crop_boxes[i] for i in indices],
        )


def point_grid(points_per_side: int) -> np.ndarray:
    """(n*n, 2) xy points in [0, 1], the centres of an n x n grid of equal cells, x varying fastest."""
    centres = (np.arange(points_per_side) + 0.5) / points_per_side
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def layer_point_grids(points_per_side: int, crop_n_layers: int, downscale_factor: int) -> list[np.ndarray]:
    """A grid per crop layer, each layer's side divided by downscale_factor once more."""
    return [point_grid(int(points_per_side / downscale_factor**layer)) for layer in range(crop_n_layers + 1)]


def crop_boxes(height: int, width: int, crop_n_layers: int, overlap_ratio: float) -> list[tuple[list[int], int]]:
    """(xyxy crop, layer) pairs: the whole image (layer 0), then for layer k a 2^k x 2^k grid of
    overlapping crops, the overlap a share of the short side."""
    crops = [([0, 0, width, height], 0)]
    for layer in range(1, crop_n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * min(height, width) * 2 / per_side)
        crop_width = -(-(overlap * (per_side - 1) + width) // per_side)
        crop_height = -(-(overlap * (per_side - 1) + height) // per_side)
        starts_x = [int((crop_width - overlap) * i) for i in range(per_side)]
        starts_y = [int((crop_height - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(starts_x, starts_y):
            crops.append(([x0, y0, min(x0 + crop_width, width), min(y0 + crop_height, height)], layer))
    return crops


def stability_scores(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """(N, H, W) logits -> (N,) IoU between the mask thresholded at threshold + offset and at
    threshold - offset: how little the mask moves when the threshold does."""
    inner = (logits > threshold + offset).sum(dim=(1, 2), dtype=torch.int64)
    outer = (logits > threshold - offset).sum(dim=(1, 2), dtype=torch.int64)
    return inner.double().div(outer.double()).nan_to_num(0.0).float() if len(logits) else torch.zeros(0)


def masks_to_boxes_inclusive(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) xyxy of the first and last rows and columns holding the mask:
    segment-anything's records end boxes on the last pixel (inclusive), one before lang-sam's
    pixel-edge convention (lang_sam.geometry); an empty mask gets [0, 0, 0, 0]."""
    boxes = masks_to_boxes(masks)
    held = (boxes[:, 2] > 0)[:, None]
    return torch.where(held, boxes - torch.tensor([0, 0, 1, 1], device=boxes.device), boxes)


def near_crop_edge(boxes: torch.Tensor, crop: list[int], image_size: tuple[int, int]) -> torch.Tensor:
    """(N,) whether a box (in the crop's frame) touches an edge of the crop that is not an edge of
    the image: the crop cut that object, another crop sees it whole."""
    x0, y0 = crop[0], crop[1]
    in_image = boxes.double() + torch.tensor([x0, y0, x0, y0], dtype=torch.float64, device=boxes.device)
    crop_edges = torch.tensor(crop, dtype=torch.float64, device=boxes.device)
    image_edges = torch.tensor([0, 0, image_size[1], image_size[0]], dtype=torch.float64, device=boxes.device)
    at_crop = (in_image - crop_edges).abs() <= EDGE_TOLERANCE
    at_image = (in_image - image_edges).abs() <= EDGE_TOLERANCE
    return (at_crop & ~at_image).any(dim=1)


def encode_masks(masks: torch.Tensor, crop: list[int], image_size: tuple[int, int]) -> list[dict]:
    """(N, h, w) bool masks of a crop -> compressed COCO RLE in the whole image's frame."""
    from pycocotools import mask as mask_utils

    array = masks.cpu().numpy()
    if list(crop) != [0, 0, image_size[1], image_size[0]]:
        whole = np.zeros((len(array), *image_size), dtype=bool)
        whole[:, crop[1] : crop[3], crop[0] : crop[2]] = array
        array = whole
    return mask_utils.encode(np.asfortranarray(array.transpose(1, 2, 0).astype(np.uint8)))


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """segment-anything's uncompressed RLE: size [H, W] and run lengths over the column-major
    pixels, starting with a run of zeros (maybe empty)."""
    flat = mask.ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def _nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> list[int]:
    """Indices kept by non-maximum suppression, best score first (torchvision)."""
    keep = batched_nms(boxes.float(), scores.float(), torch.zeros(len(boxes), dtype=torch.int64), iou_threshold)
    return keep.tolist()


def remove_small_regions(found: Candidates, min_area: float, nms_threshold: float) -> Candidates:
    """Fill holes and drop islands smaller than min_area pixels in each mask, then NMS again,
    preferring the masks that needed no change; the changed masks that stay are re-encoded."""
    import cv2
    from pycocotools import mask as mask_utils

    masks, unchanged = [], []
    for rle in found.rles:
        mask = mask_utils.decode(rle).astype(bool)
        filled, holes_changed = _small_components(mask, min_area, holes=True, cv2=cv2)
        cleaned, islands_changed = _small_components(filled, min_area, holes=False, cv2=cv2)
        masks.append(cleaned)
        unchanged.append(not (holes_changed or islands_changed))
    boxes = masks_to_boxes_inclusive(torch.from_numpy(np.stack(masks)))
    keep = _nms(boxes, torch.tensor(unchanged, dtype=torch.float32), nms_threshold)
    for index in keep:
        if not unchanged[index]:
            found.rles[index] = mask_utils.encode(np.asfortranarray(masks[index].astype(np.uint8)))
            found.boxes[index] = boxes[index]
    return found.select(keep)


def _small_components(mask: np.ndarray, min_area: float, holes: bool, cv2) -> tuple[np.ndarray, bool]:
    """holes: fill the background components (8-connected) smaller than min_area; else remove the
    mask's components smaller than min_area, keeping the largest if all are. Returns (mask, changed)."""
    working = ~mask if holes else mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(working.astype(np.uint8), connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    small = [label + 1 for label, size in enumerate(sizes) if size < min_area]
    if not small:
        return mask, False
    if holes:
        return np.isin(labels, [0, *small]), True
    kept = [label for label in range(1, count) if label not in small] or [int(np.argmax(sizes)) + 1]
    return np.isin(labels, kept), True
