"""OWLv2 (transformers' Owlv2ForObjectDetection) behind the Detector interface, like Grounding DINO
and MM-Grounding-DINO in lang_sam.detector: each box gets one of the user's classes (class ids
into parse_classes(prompt)), in pixel xyxy of the original image, sorted by score, with the same
thresholds and class-wise NMS.
"""

from __future__ import annotations

import threading
import types
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from lang_sam.detector.grounding_dino import detection_request
from lang_sam.detector.postprocess import ranked_detections, to_pixel_xyxy
from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.errors import InvalidOptionError, InvalidPromptError
from lang_sam.families.transformers_base import TransformersAdapter
from lang_sam.registry import DETECTORS
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD, Detections

DEFAULT_OWLV2 = "owlv2-base-patch16-ensemble"
DEFAULT_MAX_QUERIES = 128  # class queries per text-encoder and class-head call
CLASS_SETS_KEPT = 64  # text embeddings of the last class chunks, reused while the prompt repeats


@dataclass(frozen=True)
class Owlv2Input:
    """An image as OWLv2 takes it: pixel_values (1, 3, S, S) float32, the image padded with zeros at
    the bottom and right to a square and resized to S; image_size: the original (H, W)."""

    pixel_values: torch.Tensor
    image_size: tuple[int, int]


class Owlv2Detector(TransformersAdapter):
    """Finds the boxes of the classes named in a text prompt with OWLv2.

    Every class is one text query, and every image patch one candidate box. A box's class is its
    best-scoring query; its score is that class's score, the sigmoid of OWLv2's logit (as in
    transformers' post_process_object_detection). OWLv2 has one score per box and class, so
    box_threshold and text_threshold test the same number: a box is kept when its score is at least
    the larger of the two.

    Long prompts are queried in chunks of at most max_queries classes, which bounds memory; OWLv2's
    queries do not see one another, so the result is that of one chunk. The vision encoder runs
    once per batch of images (all images of the same processed size), whatever the prompts, and
    the text encoder once per chunk of classes: the embeddings of the last CLASS_SETS_KEPT chunks
    are kept, so a prompt that repeats (a dataset labelled with one class list, a video's
    detection frames) is encoded once.

    model: a short name from lang_sam.registry.DETECTORS, a Hugging Face repo id or a local folder
    saved with save_pretrained (model and processor); device: "cuda", "mps", "cpu" or None for the
    first available; dtype: float32 or bfloat16 (post-processing runs in float32 either way).
    """

    description = "OWLv2"
    model_types = ("owlv2",)
    model_class, processor_class = "Owlv2ForObjectDetection", "AutoProcessor"

    def __init__(
        self,
        model: str | Path = DEFAULT_OWLV2,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        max_queries: int = DEFAULT_MAX_QUERIES,
    ) -> None:
        entry = DETECTORS.get(str(model))
        super().__init__(entry.repo_id if entry else str(model), device, dtype)
        self._start(max_queries)

    @classmethod
    def from_parts(
        cls, model, processor, device: str | torch.device | None = None, dtype=None, max_queries: int = DEFAULT_MAX_QUERIES
    ) -> Owlv2Detector:
        """A detector around an already built Owlv2ForObjectDetection and Owlv2Processor."""
        detector = cls.__new__(cls)
        detector.device = resolve_device(device)
        detector.dtype = resolve_dtype(dtype, detector.device)
        detector._start(max_queries)
        detector.name = getattr(model.config, "_name_or_path", "") or "owlv2"
        detector.processor = processor
        detector.model = detector._placed(model)
        return detector

    def _refusal(self, source: str, model_type: str) -> str:
        return (f"{super()._refusal(source, model_type)} Load it with lang_sam.families.detectors.load_detector, which "
                "picks the detector for its model_type.")

    def _placed(self, network: torch.nn.Module) -> torch.nn.Module:
        return _in_place_quick_gelu(super()._placed(network))

    def _start(self, max_queries: int) -> None:
        """Check max_queries and start with no class embeddings kept."""
        if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1:
            raise InvalidOptionError(f"max_queries must be a positive whole number, got {max_queries!r}.")
        self.max_queries = max_queries
        self._class_embeddings: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()
        self._class_embeddings_lock = threading.Lock()

    @property
    def max_text_tokens(self) -> int:
        """Tokens the text encoder takes per class, start and end tokens included."""
        return self.model.config.text_config.max_position_embeddings

    def preprocess(self, image: Image.Image) -> Owlv2Input:
        """Pad to a square, resize and normalise one RGB image as OWLv2 expects; detect accepts the
        result in place of the image, so this can run ahead, in another thread."""
        pixels = self.processor.image_processor(images=image, return_tensors="pt")
        return Owlv2Input(pixels["pixel_values"], (image.height, image.width))

    def detect(
        self,
        images: Sequence[Image.Image | Owlv2Input],
        prompts: str | Sequence[str | list[str]],
        box_threshold: float = BOX_THRESHOLD,
        text_threshold: float = TEXT_THRESHOLD,
        nms_iou_threshold: float | None = None,
    ) -> list[Detections]:
        """Detect the prompt's classes in each of a list of RGB images.

        images: PIL images, or what preprocess made of them; prompts: one for all images, or one per
        image (a string to split, or a list of class names taken as they are). Returns one
        Detections per image, boxes in pixels of that image, ``data["class_scores"]`` equal to the
        box scores. A box is kept when its score is at least
        max(box_threshold, text_threshold); nms_iou_threshold: when set, boxes of the same class
        overlapping more than this are suppressed.
        """
        image_list, class_lists = detection_request(
            images, prompts, Owlv2Input, box_threshold, text_threshold, nms_iou_threshold)
        for classes in class_lists:
            self._check_lengths(classes)
        inputs = [image if isinstance(image, Owlv2Input) else self.preprocess(image) for image in image_list]
        threshold = max(box_threshold, text_threshold)
        results = []
        for image, classes, (scores, class_ids, boxes) in zip(inputs, class_lists, self._patch_predictions(inputs, class_lists)):
            keep = scores >= threshold
            pixel_boxes = padded_square_to_pixel_xyxy(boxes[keep], image.image_size)
            results.append(ranked_detections(pixel_boxes, scores[keep], class_ids[keep], scores[keep], classes,
                                             image.image_size, nms_iou_threshold))
        return results

    def _check_lengths(self, classes: list[str]) -> None:
        """Refuse, before any model runs, a class longer than the text encoder takes (it would be cut)."""
        for name in classes:
            if len(self.processor.tokenizer(name)["input_ids"]) > self.max_text_tokens:
                raise InvalidPromptError(
                    f"The class {name[:60]!r} is longer than OWLv2's text encoder takes ({self.max_text_tokens} "
                    "tokens, start and end included); shorten it."
                )

    @torch.inference_mode()
    def _patch_predictions(
        self, inputs: list[Owlv2Input], class_lists: list[list[str]]
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per image and patch: the best class's score (P,), its index into the image's classes (P,)
        and the box (P, 4), normalised (cx, cy, w, h) of the padded square; float32, on the CPU.

        Images of the same processed size share one vision-encoder call; each chunk of classes is
        encoded once and scored by the class head on all images that ask for it. This is the
        computation of Owlv2ForObjectDetection.forward, split so that the vision encoder, which
        costs the most, does not run again for every chunk of classes.
        """
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for index, image in enumerate(inputs):
            by_shape[tuple(image.pixel_values.shape)].append(index)
        results: list = [None] * len(inputs)
        for members in by_shape.values():
            pixel_values = torch.cat([inputs[index].pixel_values for index in members]).to(self.device, self.dtype)
            feature_map, _ = self.model.image_embedder(pixel_values=pixel_values)
            batch, height, width, channels = feature_map.shape
            image_features = feature_map.reshape(batch, height * width, channels)
            boxes = self.model.box_predictor(image_features, feature_map).float().cpu()
            best_logits = torch.full((batch, height * width), -torch.inf)
            best_ids = torch.zeros((batch, height * width), dtype=torch.long)
            users: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)  # chunk -> (row, first class id)
            for row, index in enumerate(members):
                classes = class_lists[index]
                for start in range(0, len(classes), self.max_queries):
                    users[tuple(classes[start:start + self.max_queries])].append((row, start))
            for chunk, chunk_users in users.items():
                rows = torch.tensor([row for row, _ in chunk_users])
                queries = self._class_queries(chunk).expand(len(rows), -1, -1)
                query_mask = torch.ones(queries.shape[:2], dtype=torch.bool, device=self.device)
                logits, _ = self.model.class_predictor(image_features[rows.to(self.device)], queries, query_mask)
                chunk_logits, chunk_ids = logits.float().cpu().max(dim=-1)
                chunk_ids += torch.tensor([start for _, start in chunk_users])[:, None]
                current_logits, current_ids = best_logits[rows], best_ids[rows]
                # the first class wins a tie, as argmax over all classes at once would pick it
                better = (chunk_logits > current_logits) | ((chunk_logits == current_logits) & (chunk_ids < current_ids))
                best_logits[rows] = torch.where(better, chunk_logits, current_logits)
                best_ids[rows] = torch.where(better, chunk_ids, current_ids)
            for row, index in enumerate(members):
                results[index] = (best_logits[row].sigmoid(), best_ids[row], boxes[row])
        return results

    def _class_queries(self, classes: tuple[str, ...]) -> torch.Tensor:
        """_embed_classes(classes), from the kept ones when these classes were encoded lately."""
        with self._class_embeddings_lock:
            kept = self._class_embeddings.get(classes)
            if kept is not None:
                self._class_embeddings.move_to_end(classes)
                return kept
        embeddings = self._embed_classes(classes)  # outside the lock: other threads' detections go on
        with self._class_embeddings_lock:
            self._class_embeddings[classes] = embeddings
            while len(self._class_embeddings) > CLASS_SETS_KEPT:
                self._class_embeddings.popitem(last=False)
        return embeddings

    def _embed_classes(self, classes: tuple[str, ...]) -> torch.Tensor:
        """(1, Q, D) unit-length text embeddings of the classes, as OWLv2's forward makes its queries."""
        tokens = self.processor(text=list(classes), return_tensors="pt").to(self.device)
        features = self.model.owlv2.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        embeddings = features.pooler_output
        return (embeddings / torch.linalg.norm(embeddings, ord=2, dim=-1, keepdim=True))[None]


def _in_place_quick_gelu(model):
    """model with each QuickGELU activation (x * sigmoid(1.702 x), OWLv2's in every encoder layer)
    computed in place on its one temporary: the same operations in the same order, so bit for bit
    the same values, in half the time (the activations were a tenth of the vision encoder's time).
    Only under no_grad or inference mode; with gradients the module's own forward runs. The swap is
    made on this model's own modules."""
    from transformers.activations import QuickGELUActivation

    def forward(module, hidden_states: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return QuickGELUActivation.forward(module, hidden_states)
        return (hidden_states * 1.702).sigmoid_().mul_(hidden_states)

    for module in model.modules():
        if type(module) is QuickGELUActivation:
            module.forward = types.MethodType(forward, module)
    return model


def padded_square_to_pixel_xyxy(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """OWLv2's normalised (cx, cy, w, h), relative to the square the processor padded the image to
    (at the bottom and right, side max(H, W)), as pixel (x0, y0, x1, y1) of the original (H, W)
    image, clipped to it."""
    height, width = image_size
    side = max(height, width)
    corners = to_pixel_xyxy(boxes, (side, side))
    return torch.minimum(corners, torch.tensor([width, height, width, height], dtype=corners.dtype))
