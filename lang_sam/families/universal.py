"""Mask2Former and OneFormer (transformers) as one universal segmenter: semantic, instance and
panoptic results as Detections, and the semantic vote that names segment-everything masks.

The families differ only in their processor call (OneFormer is told the task in text) and are
otherwise the same: transformers' own pre- and post-processing, run unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lang_sam.errors import InvalidOptionError, ModelLoadError
from lang_sam.families.transformers_base import TransformersAdapter
from lang_sam.geometry import masks_to_boxes
from lang_sam.io.images import ImageInput, load_image
from lang_sam.io.weights import missing_hub_model_message
from lang_sam.registry import DEFAULT_UNIVERSAL, UNIVERSAL_MODELS
from lang_sam.vocabulary import Detections

# model_type -> whether the processor takes the task as text (OneFormer's task token)
TASK_AS_TEXT = {"mask2former": False, "oneformer": True}


class UniversalSegmenter(TransformersAdapter):
    """A Mask2Former or OneFormer model: a registry name (lang_sam.registry.UNIVERSAL_MODELS), a
    Hugging Face repo id, or a folder saved with save_pretrained (model and processor).
    Stateless after loading, so one instance serves many threads."""

    description = "universal segmentation"
    model_types = tuple(TASK_AS_TEXT)
    model_class, processor_class = "AutoModelForUniversalSegmentation", "AutoProcessor"

    def __init__(self, model: str | Path = DEFAULT_UNIVERSAL, device: str | torch.device | None = None,
                 dtype: torch.dtype | str | None = None) -> None:
        entry = UNIVERSAL_MODELS.get(str(model))
        super().__init__(entry.repo_id if entry else str(model), device, dtype, name=str(model))
        self.task_as_text = TASK_AS_TEXT[self.model_type]
        self.labels = [self.model.config.id2label[index] for index in range(len(self.model.config.id2label))]

    def _refusal(self, source: str, model_type: str) -> str:
        return f"{source} is a {model_type} model; use Mask2Former or OneFormer."

    def _from_pretrained(self, source: str) -> tuple:
        try:
            return super()._from_pretrained(source)
        except ValueError as error:  # a config transformers cannot build this model class from
            raise ModelLoadError(f"{source} is not a Mask2Former or OneFormer model ({error}).") from None

    @torch.inference_mode()
    def _outputs(self, image: np.ndarray, task: str):
        from PIL import Image

        extra = {"task_inputs": [task]} if self.task_as_text else {}
        inputs = self.processor(images=Image.fromarray(image), return_tensors="pt", **extra)
        inputs = {key: value.to(self.device, self.dtype if value.is_floating_point() else value.dtype)
                  for key, value in inputs.items()}
        outputs = self.model(**inputs)
        for name in ("class_queries_logits", "masks_queries_logits"):  # post-processing in float32
            setattr(outputs, name, getattr(outputs, name).float())
        return outputs

    def semantic_map(self, image: ImageInput) -> np.ndarray:
        """(H, W) int64 class index of every pixel (into self.labels)."""
        pixels = load_image(image)
        outputs = self._outputs(pixels, "semantic")
        processed = self.processor.post_process_semantic_segmentation(outputs, target_sizes=[pixels.shape[:2]])[0]
        return processed.cpu().numpy().astype(np.int64)

    def semantic(self, image: ImageInput) -> Detections:
        """One mask per class present in the semantic map; score: the share of the image it covers."""
        class_map = self.semantic_map(image)
        present, counts = np.unique(class_map, return_counts=True)
        masks = class_map[None] == present[:, None, None]
        order = np.argsort(-counts, kind="stable")  # largest first, as scores go
        masks, present, counts = masks[order], present[order], counts[order]
        return _result(masks, present, counts / class_map.size, self.labels)

    def instances(self, image: ImageInput, threshold: float = 0.5) -> Detections:
        """The model's own instance segmentation, segments scoring above threshold."""
        return self._segments(image, "instance", threshold)

    def panoptic(self, image: ImageInput, threshold: float = 0.5) -> Detections:
        """The model's own panoptic segmentation (things and stuff), segments scoring above threshold."""
        return self._segments(image, "panoptic", threshold)

    def _segments(self, image: ImageInput, task: str, threshold: float) -> Detections:
        if not 0.0 <= threshold <= 1.0:
            raise InvalidOptionError(f"threshold must be between 0 and 1, got {threshold!r}.")
        pixels = load_image(image)
        outputs = self._outputs(pixels, task)
        post_process = getattr(self.processor, f"post_process_{task}_segmentation")
        processed = post_process(outputs, target_sizes=[pixels.shape[:2]], threshold=threshold)[0]
        segmentation = processed["segmentation"].cpu().numpy()
        info = processed["segments_info"]
        masks = np.stack([segmentation == s["id"] for s in info]) if info else np.zeros((0, *pixels.shape[:2]), bool)
        return _result(masks, np.array([s["label_id"] for s in info], np.int64), np.array([s["score"] for s in info]), self.labels)


def universal_labels(model: str | Path) -> list[str]:
    """The class names of a universal model (registry name, hub id or folder), from its config
    alone: no weights are loaded."""
    from transformers import AutoConfig

    entry = UNIVERSAL_MODELS.get(str(model))
    source = entry.repo_id if entry else str(model)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise ModelLoadError(missing_hub_model_message("universal segmentation", source, error)) from None
    return [config.id2label[index] for index in range(len(config.id2label))]


def vote_labels(masks: np.ndarray, class_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Name each mask by the class holding most of its pixels in a semantic map.

    masks: (N, H, W) bool; class_map: (H, W) class indices. Returns (N,) class indices and (N,)
    shares of the mask's pixels that voted for it (0 and class 0 for an empty mask)."""
    classes = int(class_map.max()) + 1 if class_map.size else 1
    flat = torch.from_numpy(class_map.reshape(-1))
    votes = torch.stack([torch.bincount(flat[torch.from_numpy(mask.reshape(-1))], minlength=classes) for mask in masks]) \
        if len(masks) else torch.zeros(0, classes, dtype=torch.int64)
    winners = votes.argmax(dim=1)
    areas = votes.sum(dim=1).clamp(min=1)
    return winners.numpy(), (votes.gather(1, winners[:, None])[:, 0] / areas).numpy()


def _result(masks: np.ndarray, label_ids: np.ndarray, scores: np.ndarray, labels: list[str]) -> Detections:
    """masks (N, H, W) with their label ids and scores as Detections: boxes around the masks, the
    score as mask score (and box score), classes the names present in order of first appearance."""
    names = [labels[int(i)] for i in label_ids]
    classes = tuple(dict.fromkeys(names))
    scores = np.asarray(scores, np.float32)
    return Detections(
        xyxy=masks_to_boxes(masks), image_size=masks.shape[1:], masks=masks.astype(bool), box_scores=scores,
        mask_scores=scores.copy(), class_ids=[classes.index(name) for name in names], classes=classes,
    )
