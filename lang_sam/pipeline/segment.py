"""The objects of one image through a segmenter, as Detections: box prompts decoded in one batch,
the clicked object on its own, best score first. And a text segmenter's answer, as Detections."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from lang_sam.detector.prompts import parse_classes
from lang_sam.errors import InvalidOptionError
from lang_sam.families.base import Segmenter, TextSegmenter
from lang_sam.geometry import mask_to_box
from lang_sam.pipeline.prompts import NamedPrompts
from lang_sam.results import CANDIDATE_SCORES_KEY, CANDIDATES_KEY, LOW_RES_KEY
from lang_sam.vocabulary import Detections, Exemplars, ImageEmbedding, MaskSet, ObjectPrompt, Thresholds



def segment_objects(segmenter: Segmenter, embed: Callable[[], ImageEmbedding], objects: NamedPrompts, image_size: tuple[int, int],
                    multimask_output: bool | None) -> Detections:
    """Masks of the named objects, sorted by score (stable), with SAM's low-res logits in data and,
    when any object was decoded with multimask output, every object's candidates (see LangSAMResult).
    embed() runs only when there is an object to decode."""
    count, (height, width) = len(objects.prompts), image_size
    masks = np.zeros((count, height, width), bool)
    mask_scores = np.zeros(count, np.float32)
    low_res = np.zeros((count, *segmenter.mask_input_size), np.float32)
    candidates: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if count:
        embedding = embed()
        box_only = [index for index, prompt in enumerate(objects.prompts) if prompt.is_box_only]
        if box_only:
            boxes = torch.from_numpy(np.stack([objects.prompts[index].box for index in box_only]))
            _place(segmenter.decode(embedding, boxes=boxes, multimask_output=bool(multimask_output)),
                   box_only, masks, mask_scores, low_res, candidates)
        for index in (index for index, prompt in enumerate(objects.prompts) if not prompt.is_box_only):
            _place(_decode_clicked(segmenter, embedding, objects.prompts[index], multimask_output),
                   [index], masks, mask_scores, low_res, candidates)
    boxes = np.stack([mask_to_box(masks[index]) if prompt.box is None else prompt.box
                      for index, prompt in enumerate(objects.prompts)]) if count else np.zeros((0, 4), np.float32)
    data = {LOW_RES_KEY: low_res}
    if candidates:
        data[CANDIDATES_KEY], data[CANDIDATE_SCORES_KEY] = _all_candidates(candidates, masks, mask_scores)
    found = Detections(xyxy=boxes, image_size=image_size, masks=masks, box_scores=objects.scores, mask_scores=mask_scores,
                       class_ids=np.array([objects.classes.index(name) for name in objects.names], np.int64),
                       classes=tuple(objects.classes), data=data)
    return found[np.argsort(-objects.scores, kind="stable")]


def _decode_clicked(segmenter: Segmenter, embedding: ImageEmbedding, prompt: ObjectPrompt, multimask_output: bool | None) -> MaskSet:
    """The clicked object: its points, with its box and earlier mask when it has them. With no
    multimask choice, a single click alone takes the best of three (SAM's demo)."""
    single_click = len(prompt.points) == 1 and prompt.box is None
    return segmenter.decode(
        embedding,
        point_coords=torch.from_numpy(prompt.points)[None],
        point_labels=torch.from_numpy(prompt.labels)[None],
        boxes=None if prompt.box is None else torch.from_numpy(prompt.box)[None],
        mask_input=None if prompt.mask_logits is None else torch.from_numpy(prompt.mask_logits)[None, None],
        multimask_output=single_click if multimask_output is None else bool(multimask_output),
    )


def _place(decoded: MaskSet, indices: list[int], masks: np.ndarray, mask_scores: np.ndarray, low_res: np.ndarray,
           candidates: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    """Put the segmenter's best candidate of each prompt (by predicted IoU) at indices, and all
    three into candidates when it decoded with multimask output."""
    best = decoded.iou.argmax(dim=1)
    rows = torch.arange(len(best))
    masks[indices] = decoded.masks[rows, best].cpu().numpy()
    mask_scores[indices] = decoded.iou[rows, best].float().cpu().numpy()
    low_res[indices] = decoded.low_res_logits[rows, best].float().cpu().numpy()
    if decoded.iou.shape[1] > 1:
        for row, index in enumerate(indices):
            candidates[index] = (decoded.masks[row].cpu().numpy(), decoded.iou[row].float().cpu().numpy())


def _all_candidates(candidates: dict[int, tuple[np.ndarray, np.ndarray]], masks: np.ndarray,
                    mask_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, H, W) candidates and (N, 3) scores of every object: an object decoded with one mask
    has it first, then empty masks scored NaN."""
    count, height, width = masks.shape
    candidate_masks = np.zeros((count, 3, height, width), bool)
    candidate_scores = np.full((count, 3), np.nan, np.float32)
    for index in range(count):
        candidate_masks[index], candidate_scores[index] = candidates.get(
            index, (np.stack([masks[index], *np.zeros((2, height, width), bool)]), [mask_scores[index], np.nan, np.nan]))
    return candidate_masks, candidate_scores


def segment_text(segmenter: TextSegmenter, arrays: list[np.ndarray], prompts, thresholds: Thresholds,
                 exemplars: Exemplars | None = None, label: str = "object",
                 embeds: list[Callable[[], ImageEmbedding]] | None = None) -> list[Detections]:
    """A text segmenter's objects of each image's classes (SAM 3: no detector, no box prompts);
    prompts: one for all images or one per image, as Detector.detect takes them; exemplars: example
    boxes for one image, with its prompt's one class or alone (prompts None: their objects are
    named label); embeds: each image's embedding on demand (a pipeline's cached one), else the
    segmenter embeds each image itself."""
    per_image = [prompts] * len(arrays) if prompts is None or isinstance(prompts, str) else list(prompts)
    if len(per_image) != len(arrays):
        raise InvalidOptionError(f"Got {len(arrays)} images but {len(per_image)} prompts; give one prompt or one per image.")
    classes = [[] if prompt is None else parse_classes(prompt) for prompt in per_image]
    found = segmenter.segment_text(arrays, classes, box_threshold=thresholds.box, nms_iou_threshold=thresholds.nms_iou,
                                   exemplars=None if exemplars is None else [exemplars], embeds=embeds)
    if prompts is None:  # the exemplars alone: their objects are yours, named label
        found = [replace(objects, classes=(label,)) for objects in found]
    return [objects[:thresholds.max_detections] for objects in found]
