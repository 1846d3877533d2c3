"""Text to boxes with transformers' Grounding DINO and MM-Grounding-DINO (the same processor,
outputs and label rules; the model class is picked from config.json's model_type)."""

from __future__ import annotations

import types
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from lang_sam.detector.deformable_attention import float32_deformable_attention_forward
from lang_sam.detector.original_checkpoint import DEFAULT_TOKENIZER, load_original_grounding_dino
from lang_sam.detector.postprocess import ranked_detections, select_detections
from lang_sam.detector.prompts import Caption, parse_classes, split_into_captions
from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.errors import InvalidOptionError, ModelLoadError
from lang_sam.registry import DEFAULT_DETECTOR, DETECTORS
from lang_sam.io.weights import config_model_type, load_pretrained_checked, load_processor, missing_hub_model_message
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD, Detections, Thresholds

# config.json's model_type -> the transformers class GroundingDinoDetector runs it with
GROUNDING_DINO_CLASSES = {
    "grounding-dino": "GroundingDinoForObjectDetection",
    "mm-grounding-dino": "MMGroundingDinoForObjectDetection",
}


@dataclass(frozen=True)
class DetectorInput:
    """An image resized and normalised for the detector: pixel_values (1, 3, h, w) float32,
    pixel_mask (1, h, w), and the original image's (H, W), to which boxes are scaled."""

    pixel_values: torch.Tensor
    pixel_mask: torch.Tensor
    image_size: tuple[int, int]


class GroundingDinoDetector:
    """Finds the boxes of the classes named in a text prompt.

    model: a Hugging Face repo id (or a short name from lang_sam.registry.DETECTORS), a local folder in
    transformers format (Grounding DINO or MM-Grounding-DINO, told apart by config.json's model_type),
    or an original IDEA checkpoint (.pth, e.g. groundingdino_swint_ogc.pth,
    read with the bert-base-uncased ``tokenizer``, an id or a folder). Weights come through the
    Hugging Face cache (HF_HOME, HF_HUB_OFFLINE). processor: a folder or id holding the image
    processor and tokenizer, when they are not saved with the model.
    device: "cuda", "mps", "cpu" or None for the first available; dtype: float32 or bfloat16.
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_DETECTOR,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        tokenizer: str | Path = DEFAULT_TOKENIZER,
        processor: str | Path | None = None,
    ) -> None:
        resolved_device = resolve_device(device)  # bad options fail before a model is loaded
        resolved_dtype = resolve_dtype(dtype, resolved_device)
        source = _source(str(model))
        network_model, loaded_processor = _load(source, tokenizer, None if processor is None else str(processor))
        self._attach(network_model, loaded_processor, resolved_device, resolved_dtype, source)

    @classmethod
    def from_parts(cls, model, processor, device: str | torch.device | None = None, dtype=None) -> GroundingDinoDetector:
        """A detector around an already built transformers model and processor."""
        detector = cls.__new__(cls)
        resolved_device = resolve_device(device)
        name = getattr(model.config, "_name_or_path", "") or "grounding-dino"
        detector._attach(model, processor, resolved_device, resolve_dtype(dtype, resolved_device), name)
        return detector

    def _attach(self, model, processor, device: torch.device, dtype: torch.dtype, name: str) -> None:
        self.name = name
        self.device = device
        self.dtype = dtype
        self.processor = processor
        self.model = _prepare(model, device, dtype)

    @property
    def max_text_tokens(self) -> int:
        return self.model.config.max_text_len

    def preprocess(self, image: Image.Image) -> DetectorInput:
        """Resize and normalise one RGB image as the model expects; detect accepts the result in
        place of the image, so this can run ahead, in another thread."""
        pixels = self.processor.image_processor(images=image, return_tensors="pt")
        return DetectorInput(pixels["pixel_values"], pixels["pixel_mask"], (image.height, image.width))

    def detect(
        self,
        images: Sequence[Image.Image | DetectorInput],
        prompts: str | Sequence[str | list[str]],
        box_threshold: float = BOX_THRESHOLD,
        text_threshold: float = TEXT_THRESHOLD,
        nms_iou_threshold: float | None = None,
    ) -> list[Detections]:
        """Detect the prompt's classes in each of a list of RGB images.

        images: PIL images, or what preprocess made of them; prompts: one for all images, or one per
        image (a string to split, or a list of class names taken as they are). Returns one
        Detections (boxes, box scores, class ids into that image's classes, ``data["class_scores"]``
        the score of each box's own class) per image, in pixels of that image.
        nms_iou_threshold: when set, boxes of the same class overlapping more than this are suppressed.
        """
        image_list, class_lists = detection_request(
            images, prompts, DetectorInput, box_threshold, text_threshold, nms_iou_threshold)
        captions = [split_into_captions(classes, self.processor.tokenizer, self.max_text_tokens) for classes in class_lists]
        inputs = [image if isinstance(image, DetectorInput) else self.preprocess(image) for image in image_list]
        raw = self._run(inputs, captions)
        results = []
        for index, image in enumerate(inputs):
            parts = [
                (*select_detections(logits, boxes, caption.token_spans, box_threshold, text_threshold, image.image_size), caption)
                for caption, (logits, boxes) in zip(captions[index], raw[index])
            ]
            results.append(_merge(parts, class_lists[index], image.image_size, nms_iou_threshold))
        return results

    @torch.inference_mode()
    def _run(
        self, inputs: list[DetectorInput], captions: list[list[Caption]]
    ) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Model logits and boxes per image and caption. Images of the same processed size and
        caption are run as one batch, which gives the same results as one by one."""
        groups: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
        for image_index, image in enumerate(inputs):
            for caption_index, caption in enumerate(captions[image_index]):
                groups[(tuple(image.pixel_values.shape), caption.text)].append((image_index, caption_index))
        results: list[list] = [[None] * len(image_captions) for image_captions in captions]
        for (_, text), members in groups.items():
            pixel_values = torch.cat([inputs[i].pixel_values for i, _ in members]).to(self.device, self.dtype)
            pixel_mask = torch.cat([inputs[i].pixel_mask for i, _ in members]).to(self.device)
            tokens = self.processor.tokenizer([text] * len(members), return_tensors="pt").to(self.device)
            outputs = self.model(pixel_values=pixel_values, pixel_mask=pixel_mask, **tokens)
            text_length = tokens["input_ids"].shape[1]
            for row, (image_index, caption_index) in enumerate(members):
                results[image_index][caption_index] = (
                    outputs.logits[row, :, :text_length].float().cpu(),
                    outputs.pred_boxes[row].float().cpu(),
                )
        return results


def _source(model: str) -> str:
    """A registry name as the repo id or local file to load (IDEA's files come through the Hugging
    Face cache, downloaded once); anything else as it is."""
    entry = DETECTORS.get(model)
    if entry is None:
        return model
    if entry.file_name is None:
        return entry.repo_id
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(entry.repo_id, entry.file_name)
    except Exception as error:  # noqa: BLE001 - offline, missing, refused: all mean "not here"
        raise ModelLoadError(missing_hub_model_message("Grounding DINO", f"{entry.repo_id}/{entry.file_name}", error)) from None


def _load(source: str, tokenizer: str | Path, processor: str | None = None):
    """Model and processor from a repo id, a transformers folder, or an original .pth file; the
    processor from its own folder or repo when one is given."""
    import transformers

    if source.endswith(".pth"):
        model, original_processor = load_original_grounding_dino(source, tokenizer)
        return model, original_processor if processor is None else load_processor(processor, "Grounding DINO")
    model_type = config_model_type(source, "Grounding DINO")
    if model_type not in GROUNDING_DINO_CLASSES:
        raise ModelLoadError(
            f"{source} holds a {model_type!r} model, not Grounding DINO or MM-Grounding-DINO "
            f"(model_type {' or '.join(map(repr, GROUNDING_DINO_CLASSES))}). Load it with "
            "lang_sam.families.detectors.load_detector, which picks the detector for its model_type."
        )
    model = load_pretrained_checked(getattr(transformers, GROUNDING_DINO_CLASSES[model_type]).from_pretrained, source, "Grounding DINO")
    return model, load_processor(processor or source, "Grounding DINO")


def _prepare(model, device: torch.device, dtype: torch.dtype):
    """Move the model to device and dtype, in eval mode, with deformable attention in float32.

    The swap is made on this model's own modules, so nothing changes for other models in the
    process; see lang_sam.detector.deformable_attention for why (NaN in bfloat16 on CPU).
    Grounding DINO and MM-Grounding-DINO each define a kernel module of this name, with the same
    forward signature.
    """
    model = model.to(device, dtype).eval()
    for module in model.modules():
        if type(module).__name__ == "MultiScaleDeformableAttention":
            module.forward = types.MethodType(float32_deformable_attention_forward, module)
    return model


def _merge(parts, classes: list[str], image_size: tuple[int, int], nms_iou_threshold: float | None) -> Detections:
    """Join the detections of every caption of one prompt, with class ids into the prompt's classes."""
    boxes, scores, class_ids, class_scores = [], [], [], []
    for part_boxes, part_scores, part_ids, part_class_scores, caption in parts:
        global_ids = torch.tensor([classes.index(name) for name in caption.classes], dtype=torch.long)
        boxes.append(part_boxes)
        scores.append(part_scores)
        class_ids.append(global_ids[part_ids])
        class_scores.append(part_class_scores)
    boxes, scores, class_ids, class_scores = (torch.cat(t) for t in (boxes, scores, class_ids, class_scores))
    return ranked_detections(boxes, scores, class_ids, class_scores, classes, image_size, nms_iou_threshold)


def detection_request(
    images, prompts, input_type: type, box_threshold: float, text_threshold: float, nms_iou_threshold: float | None
) -> tuple[list, list[list[str]]]:
    """What a detect call asks for, every argument checked before any model runs: the images as a
    list, and each image's classes (parse_classes of its prompt: one prompt for all images, or one
    per image). input_type: the detector's preprocess result."""
    if isinstance(images, (Image.Image, input_type)):
        raise InvalidOptionError("detect takes a list of images and returns one Detections per image; give [image] for one.")
    image_list = list(images)
    prompt_list = [prompts] * len(image_list) if isinstance(prompts, str) else list(prompts)
    if len(prompt_list) != len(image_list):
        raise InvalidOptionError(f"Got {len(image_list)} images but {len(prompt_list)} prompts; give one prompt or one per image.")
    Thresholds(box_threshold, text_threshold, nms_iou_threshold)
    return image_list, [parse_classes(prompt) for prompt in prompt_list]
