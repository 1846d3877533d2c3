"""SAM 3 (transformers' Sam3Model) as a text segmenter: each class name is one concept prompt, and
SAM 3 returns every instance of it, box and mask, with no detector in front.

Scores and box_threshold. SAM 3's DETR decoder has a fixed set of object queries (200 in the
released model). For each query it gives a detection logit: the query's dot product with the
prompt's pooled text features (clamped to +-12). Once per image and prompt, its presence token
gives a presence logit (clamped to +-10): whether the concept is in the image at all.
transformers' post_process_instance_segmentation, which this runs unchanged, scores a query
``sigmoid(detection) * sigmoid(presence)`` and keeps it when that product is *above* (strictly)
box_threshold. So the threshold bounds the product: with presence 0.9 and box_threshold 0.3 a
query needs a detection probability above 0.33, and when the model judges the concept absent
(presence 0.1) no query passes 0.3. That product is each instance's score, in Detections both
as its box score and its mask score (SAM 3 has one score per instance). Meta's demos use 0.5. Masks are
the mask logits' sigmoid, resized bilinearly to the image and cut at 0.5.

Exemplars. Boxes around examples of the concept (and counter-examples, label 0) join a class
name's prompt, or stand alone (then the text is "visual", as transformers' Sam3Processor writes it,
and the class is named so): SAM 3's geometry encoder reads them against the image's features, and
every instance of the concept is returned, not only the boxed ones. Exemplars show one concept, so
they go with one class name at most. The boxes are normalised by the processor itself.

Clicks and boxes on an object. facebook/sam3 (a sam3_video checkpoint) also holds SAM 3's tracker,
transformers' Sam3TrackerModel: SAM 2's prompt encoder and mask decoder over SAM 3's vision
backbone with a neck of its own. Loaded from such a checkpoint the adapter is also a promptable
Segmenter (embed once, decode points, boxes and a mask), run by families/transformers_sam.py's
PromptDecoding as SAM 2.1 is. transformers loads the tracker's backbone from the detector's
weights, so the adapter keeps one backbone for both (SAM 3's 446 M-parameter ViT held once).
A checkpoint without the tracker (a folder of Sam3Model alone) refuses clicks, saying so.

One trunk pass for text and clicks. As in Meta's SAM 3, the detector and the tracker read one ViT
trunk through two necks of their own. embed runs the trunk once and keeps its states (1, P, C) in
the ImageEmbedding (with the tracker, after the tracker's three levels, which its neck makes from
those states then); the text path runs the detector's neck on them. A pipeline caches that one
embedding per image, so a text prompt and clicks on the same image run the trunk once. transformers
has no public call from a trunk's states to either neck's output (Sam3VisionModel.forward takes
pixels, Sam3TrackerModel.get_image_embeddings too; only Sam3VideoModel bridges them, in
get_vision_features_for_tracker), so _detector_features and Sam3TextSegmenter._tracker_levels
write out those few steps of transformers, in its order; the tests check both paths equal the
models called on pixels, exactly. At SAM 3's size the trunk's states are 21 MB in float32, the
tracker's levels as much again, and a text prompt on a new image also runs the tracker's neck
(about 4% of the trunk's multiply-adds, 2% of its time on a CPU) so that clicks on it need no
second pass.

Cost. The vision encoder (the bulk of the model) runs once per image; its features are reused for
every class of that image. The classes are run class_batch_size at a time, as one batch of text
prompts against the image's features repeated: the same as running each class alone (to float
rounding, about 1e-9 on CPU; tests/families/test_sam3.py checks it against transformers called
directly). Memory grows with the batch: each class holds its own copy of the image's feature
pyramid in the mask decoder (about 110 MB in float32 at SAM 3's 1008x1008 input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar, TypeVar

import numpy as np
import torch

from lang_sam.detector.postprocess import class_wise_nms
from lang_sam.errors import InvalidOptionError, InvalidPromptError, ModelLoadError
from lang_sam.vocabulary.capabilities import NOT_FINE_TUNED, NOT_ONNX
from lang_sam.families.transformers_base import TransformersAdapter
from lang_sam.families.transformers_sam import SAM3_TRACKER, PromptDecoding, TransformersPrepared
from lang_sam.io.images import load_image
from lang_sam.io.weights import load_pretrained_checked
from lang_sam.vocabulary import BOX_THRESHOLD, Detections, Exemplars, ImageEmbedding, check_threshold

DEFAULT_SAM3 = "facebook/sam3"
# A sam3_video folder (the layout of facebook/sam3 itself) holds the image model as its detector;
# Sam3Model loads either. Only a sam3_video folder holds the tracker that takes clicks and boxes.
SAM3_MODEL_TYPES = ("sam3", "sam3_video")
WITH_TRACKER = "sam3_video"
NO_TRACKER = "its checkpoint holds no SAM 3 tracker for clicks and boxes (facebook/sam3 does)"
TRACKER_PREFIX = "tracker_model."  # the tracker's weights in a sam3_video checkpoint
MASK_THRESHOLD = 0.5
VISUAL_PROMPT = "visual"  # the text of exemplar boxes given alone (transformers' Sam3Processor's default)

Loaded = TypeVar("Loaded")


class Sam3Adapter(TransformersAdapter):
    """What SAM 3's two adapters (image and video) load alike: the transformers release is checked to
    have the model class, the model is loaded in its dtype, and a folder or repo of the wrong kind is
    an error saying what to give (hints: more, by the model_type found)."""

    hints: ClassVar[dict[str, str]] = {}

    def _read_model_type(self, source: str) -> str:
        import transformers

        if not hasattr(transformers, self.model_class):
            raise ModelLoadError(f"SAM 3 needs a transformers release that has {self.model_class}; this is transformers "
                                 f"{transformers.__version__}. Upgrade it: pip install -U transformers")
        if Path(source).is_dir() and not (Path(source) / "config.json").is_file():
            raise ModelLoadError(f"{source} has no config.json: give {self._wanted()}, or a hub repo id such as facebook/sam3.")
        return _load(transformers.AutoConfig.from_pretrained, source).model_type

    def _refusal(self, source: str, model_type: str) -> str:
        return (f"{source} is a {model_type} model, not {self.description}:{self.hints.get(model_type, '')} give "
                f"facebook/sam3 or {self._wanted()}.")

    def _wanted(self) -> str:
        return f"a folder saved with save_pretrained from {self.model_class} and {self.processor_class}"

    def _from_pretrained(self, source: str) -> tuple:
        import transformers

        # Loading in the dtype (rather than .to(dtype) after) keeps the vision encoder's rotary
        # position tables in float32, as transformers means them to be: bf16 would round them.
        network = _load(lambda path: getattr(transformers, self.model_class).from_pretrained(path, dtype=self.dtype), source)
        return network, _load(getattr(transformers, self.processor_class).from_pretrained, source)

    def _placed(self, network: torch.nn.Module) -> torch.nn.Module:
        return network.to(self.device).eval()  # already in its dtype


class Sam3Concepts(Sam3Adapter):
    """What every SAM 3 adapter runs: concept prompts (class names, exemplar boxes, or both) with
    Sam3Processor. Stateless after loading, so one instance serves many images; class_batch_size
    bounds how many classes share one forward."""

    processor_class = "Sam3Processor"
    takes_text = True
    why_not = {"text_via_detector": "finds the text's objects itself, with no detector",
               "segments_everything": "it takes no point prompts (no tracker)",
               "exports_onnx": NOT_ONNX, "fine_tunes": NOT_FINE_TUNED}

    def __init__(self, model: str | Path = DEFAULT_SAM3, device: str | torch.device | None = None,
                 dtype: torch.dtype | str | None = None, class_batch_size: int = 8, name: str | None = None) -> None:
        if isinstance(class_batch_size, bool) or not isinstance(class_batch_size, int) or class_batch_size < 1:
            raise InvalidOptionError(f"class_batch_size must be a whole number >= 1, got {class_batch_size!r}.")
        super().__init__(model, device, dtype, name)
        self.class_batch_size = class_batch_size
        self.max_text_tokens = self.model.config.text_config.max_position_embeddings

    def preprocess(self, image: np.ndarray) -> TransformersPrepared:
        """The processor's resize and normalisation of one (H, W, 3) uint8 RGB image, for embed (SAM 3's
        tracker processor reads the same preprocessor_config.json: the same pixels)."""
        pixels = self.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
        return TransformersPrepared(pixels, image.shape[:2], tuple(pixels.shape[-2:]))

    @torch.inference_mode()
    def embed(self, prepared: TransformersPrepared) -> ImageEmbedding:
        """The ViT trunk run once on the image: its states (1, P, C), P patches, which the text path's
        neck reads (see the module docstring)."""
        trunk = self.model.vision_encoder.backbone(prepared.pixel_values.to(self.device, self.dtype)).last_hidden_state
        return ImageEmbedding((trunk,), prepared.original_size, prepared.input_size)

    def segment_text(
        self, images: Sequence[np.ndarray], classes: Sequence[Sequence[str]], box_threshold: float = BOX_THRESHOLD,
        nms_iou_threshold: float | None = None, exemplars: Sequence[Exemplars | None] | None = None,
        embeds: Sequence[Callable[[], ImageEmbedding]] | None = None,
    ) -> list[Detections]:
        """For each (H, W, 3) uint8 image, the instances of each of its classes (one list of names per
        image, labels exactly as given) scoring above box_threshold (see the module docstring), sorted
        by score; nms_iou_threshold: when set, instances of the same class whose boxes overlap more
        than this are suppressed. exemplars: None, or one Exemplars (or None) per image, joining its
        one class name or standing alone (the class is then "visual"). embeds: None, or one callable
        per image giving its embed (a pipeline's cached one, so that clicks and text share one trunk
        pass); called only when the image has something to segment. No class and no exemplars, or
        nothing above the threshold, gives an empty result."""
        if len(images) != len(classes):
            raise InvalidPromptError(f"Got {len(images)} images but {len(classes)} class lists; give one list of class "
                                     "names per image.")
        exemplars = [None] * len(images) if exemplars is None else list(exemplars)
        if len(exemplars) != len(images):
            raise InvalidPromptError(f"Got {len(images)} images but {len(exemplars)} exemplar sets; give one (or None) per image.")
        if embeds is not None and len(embeds) != len(images):
            raise InvalidPromptError(f"Got {len(images)} images but {len(embeds)} embeds; give one per image.")
        check_threshold("box_threshold", box_threshold)
        if nms_iou_threshold is not None:
            check_threshold("nms_iou_threshold", nms_iou_threshold)
        class_lists = [checked_classes(names, self.processor.tokenizer, self.max_text_tokens)
                       for names in classes]  # errors before any model runs
        pixels = [load_image(image) for image in images]
        class_lists = [_with_exemplars(names, boxes, image.shape[:2])
                       for names, boxes, image in zip(class_lists, exemplars, pixels)]
        embeds = [lambda image=image: self.embed(self.preprocess(image)) for image in pixels] if embeds is None else embeds
        return [self._segment(image, names, box_threshold, nms_iou_threshold, boxes, embed)
                for image, names, boxes, embed in zip(pixels, class_lists, exemplars, embeds)]

    @torch.inference_mode()
    def _segment(self, image: np.ndarray, classes: list[str], box_threshold: float, nms_iou_threshold: float | None,
                 exemplars: Exemplars | None, embed: Callable[[], ImageEmbedding]) -> Detections:
        """All classes of one image: its embedding (the trunk once) and the detector's neck, then the
        classes in batches (with exemplars, its one class)."""
        height, width = image.shape[:2]
        if not classes:
            return _segments([], [], [], [], classes, (height, width))
        vision = self._detector_features(embed())
        boxes, scores, class_ids, masks = [], [], [], []
        for start in range(0, len(classes), self.class_batch_size):
            batch = classes[start:start + self.class_batch_size]
            text = self.processor(text=batch, return_tensors="pt")
            outputs = self.model(vision_embeds=_repeated(vision, len(batch)),
                                 input_ids=text["input_ids"].to(self.device),
                                 attention_mask=text["attention_mask"].to(self.device),
                                 **self._exemplar_inputs(exemplars, (height, width)))
            for offset in range(len(batch)):  # one class at a time: only its masks are ever at image size
                found = self.processor.post_process_instance_segmentation(
                    _one_prompt_float32(outputs, offset), threshold=box_threshold, mask_threshold=MASK_THRESHOLD,
                    target_sizes=[(height, width)],
                )[0]
                if not len(found["scores"]):  # its masks are then left at the model's size: nothing to add
                    continue
                boxes.append(found["boxes"].cpu())
                scores.append(found["scores"].cpu())
                class_ids.append(torch.full((len(found["scores"]),), start + offset, dtype=torch.long))
                masks.append(found["masks"].bool().cpu())
        return _segments(boxes, scores, class_ids, masks, classes, (height, width), nms_iou_threshold)

    def _detector_features(self, embedding: ImageEmbedding):
        """What Sam3Model.get_vision_features gives for the image, from the trunk's states that embed
        kept (the last feature): Sam3VisionModel.forward after its backbone, the detector's neck."""
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        trunk = embedding.features[-1].to(self.device)
        levels, positions = self.model.vision_encoder.neck(_patch_grid(trunk, embedding.input_size, self.model.vision_encoder))
        return Sam3VisionEncoderOutput(last_hidden_state=trunk, fpn_hidden_states=levels, fpn_position_encoding=positions)

    def _exemplar_inputs(self, exemplars: Exemplars | None, image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Sam3Model's input_boxes (1, N, 4) (normalised cx, cy, w, h, by the processor) and
        input_boxes_labels (1, N) of one image's exemplars; none without them."""
        if exemplars is None:
            return {}
        inputs = self.processor(original_sizes=[list(image_size)], input_boxes=[exemplars.boxes.tolist()],
                                input_boxes_labels=[exemplars.labels.tolist()], return_tensors="pt")
        return {"input_boxes": inputs["input_boxes"].to(self.device, self.dtype),
                "input_boxes_labels": inputs["input_boxes_labels"].to(self.device)}


class Sam3TextSegmenter(Sam3Concepts, PromptDecoding):
    """SAM 3 from a Hugging Face repo id (facebook/sam3 is gated: accept its licence first) or a
    folder saved with save_pretrained (Sam3Model and Sam3Processor; a Sam3VideoModel folder, as
    facebook/sam3 is, also gives clicks and boxes through its tracker)."""

    family = "sam3"
    description = "SAM 3"
    model_types = SAM3_MODEL_TYPES
    model_class = "Sam3Model"
    driver = SAM3_TRACKER
    takes_clicks_and_boxes = segments_everything = True  # False on an instance loaded without its tracker
    why_not = {**Sam3Concepts.why_not, "tracks_video": "an image model; SAM 3 video (same repo) tracks"}

    def __init__(self, model: str | Path = DEFAULT_SAM3, device: str | torch.device | None = None,
                 dtype: torch.dtype | str | None = None, class_batch_size: int = 8, name: str | None = None) -> None:
        super().__init__(model, device, dtype, class_batch_size, name)
        self.prompt_model = self.prompt_processor = None
        if self.model_type == WITH_TRACKER and _holds_tracker(str(model)):
            self.prompt_model, self.prompt_processor = self._tracker(str(model))
        else:
            self.takes_clicks_and_boxes = self.segments_everything = False
            self.why_not = {**self.why_not, "takes_clicks_and_boxes": NO_TRACKER, "segments_everything": NO_TRACKER}

    def _tracker(self, source: str) -> tuple[torch.nn.Module, object]:
        """Sam3TrackerModel and its processor from the same checkpoint, the tracker's vision
        backbone replaced by the detector's (transformers loads it from the same weights)."""
        import transformers

        tracker = _load(lambda path: transformers.Sam3TrackerModel.from_pretrained(path, dtype=self.dtype), source)
        tracker.vision_encoder.backbone = self.model.vision_encoder.backbone
        return tracker.to(self.device).eval(), _load(transformers.Sam3TrackerProcessor.from_pretrained, source)

    @torch.inference_mode()
    def embed(self, prepared: TransformersPrepared) -> ImageEmbedding:
        """The trunk run once on the image: with the tracker, its three levels (what
        Sam3TrackerModel.get_image_embeddings gives), then the trunk's states (1, P, C) for the text
        path; without it, the trunk's states alone."""
        shared = super().embed(prepared)
        if self.prompt_model is None:
            return shared
        return ImageEmbedding((*self._tracker_levels(shared), *shared.features), shared.original_size, shared.input_size)

    def _tracker_levels(self, shared: ImageEmbedding) -> list[torch.Tensor]:
        """Sam3TrackerModel.get_image_embeddings from the trunk's states rather than pixels: the
        tracker's neck on them (Sam3VisionModel.forward after its backbone), then get_image_features'
        and get_image_embeddings' steps, in their order and layout, so the decoder computes the same."""
        tracker = self.prompt_model
        trunk = shared.features[-1]
        levels = list(tracker.vision_encoder.neck(_patch_grid(trunk, shared.input_size, tracker.vision_encoder))[0])
        levels[0] = tracker.mask_decoder.conv_s0(levels[0])
        levels[1] = tracker.mask_decoder.conv_s1(levels[1])
        levels = [level.flatten(2).permute(2, 0, 1) for level in levels]
        levels[-1] = levels[-1] + tracker.no_memory_embedding
        return [level.permute(1, 2, 0).view(len(trunk), -1, *size) for level, size in zip(levels, tracker.backbone_feature_sizes)]

    def _embedding_arguments(self, embedding: ImageEmbedding) -> dict:
        """The tracker's levels: the embedding's last feature, the trunk's states, is the text path's."""
        return {"image_embeddings": [feature.to(self.device) for feature in embedding.features[:-1]]}

    def parameter_count(self) -> int:
        """Number of weights, the shared backbone counted once."""
        weights = {id(weight): weight for module in (self.model, self.prompt_model) if module is not None
                   for weight in module.parameters()}
        return sum(weight.numel() for weight in weights.values())


class Sam3LiteTextSegmenter(Sam3Concepts):
    """SAM 3 LiteText (transformers' Sam3LiteTextModel, with Sam3Processor): SAM 3's image model with a
    distilled MobileCLIP text encoder (up to 88% fewer text parameters), run as SAM 3 is: text
    and exemplar boxes. Its checkpoints hold no tracker, so clicks and boxes on an object are refused."""

    family = "sam3_lite_text"
    description = "SAM 3 LiteText"
    model_types = ("sam3_lite_text",)
    model_class = "Sam3LiteTextModel"
    why_not = {**Sam3Concepts.why_not, "takes_clicks_and_boxes": "no tracker in its checkpoints (sam3 has one)",
               "tracks_video": "an image model, with no video model (sam3 tracks)"}


def _with_exemplars(classes: list[str], exemplars: Exemplars | None, image_size: tuple[int, int]) -> list[str]:
    """The classes to run with an image's exemplars: its one class name, or "visual" when the
    exemplars stand alone; the InvalidPromptError that says what is wrong with them."""
    if exemplars is None:
        return classes
    if not isinstance(exemplars, Exemplars):
        raise InvalidPromptError(f"Give exemplars as lang_sam.vocabulary.Exemplars (boxes and labels), got {type(exemplars).__name__}.")
    exemplars.check_inside(image_size)
    if len(classes) > 1:
        raise InvalidPromptError(f"Exemplar boxes show one concept: give one class name with them (or none), got {len(classes)}: "
                                 f"{', '.join(classes)}.")
    if not classes and not exemplars.has_example:
        raise InvalidPromptError("Negative exemplars alone show nothing to look for: add an exemplar box of what to find, "
                                 "or a class name.")
    return classes or [VISUAL_PROMPT]


def _holds_tracker(source: str) -> bool:
    """Whether the checkpoint's weights (already local: the detector was loaded from them) hold SAM 3's
    tracker, as facebook/sam3's do; a sam3_video folder may hold the detector alone."""
    import json

    from safetensors import safe_open
    from transformers.utils import cached_file

    index = cached_file(source, "model.safetensors.index.json", _raise_exceptions_for_missing_entries=False)
    if index is not None:
        names = json.loads(Path(index).read_text())["weight_map"]
    else:
        weights = cached_file(source, "model.safetensors", _raise_exceptions_for_missing_entries=False)
        if weights is None:
            return False
        with safe_open(weights, "pt") as opened:
            names = list(opened.keys())
    return any(name.startswith(TRACKER_PREFIX) for name in names)


def checked_classes(names: Sequence[str], tokenizer, max_tokens: int) -> list[str]:
    """The class names of one image or video, refused when SAM 3 cannot take them as prompts
    (a string rather than a list, an empty name, more tokens than its text encoder takes)."""
    if isinstance(names, str):
        raise InvalidPromptError(f"Give each image a list of class names such as ['car', 'wheel'], got the string "
                                 f"{names!r} (lang_sam.detector.prompts.parse_classes splits 'car, wheel').")
    names = list(names)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InvalidPromptError(f"A class name must be a non-empty string, got {name!r}.")
        tokens = len(tokenizer(name)["input_ids"])
        if tokens > max_tokens:
            raise InvalidPromptError(f"The class {name[:60]!r} is {tokens} tokens, more than SAM 3's text encoder "
                                     f"takes ({max_tokens}); shorten it.")
    return names


def _load(load: Callable[[str], Loaded], source: str) -> Loaded:
    """load(source), its failures as errors that say what to do (a gated repo: how to get access)."""
    try:
        return load_pretrained_checked(load, source, "SAM 3")
    except ValueError as error:  # a config of a kind transformers does not know
        raise ModelLoadError(f"{source} is not a SAM 3 model ({error}).") from None


def _patch_grid(trunk: torch.Tensor, input_size: tuple[int, int], encoder: torch.nn.Module) -> torch.Tensor:
    """The trunk's states (B, P, C) as the (B, C, h, w) grid of patches a neck reads, as
    Sam3VisionModel.forward lays them out for its neck (encoder: a Sam3VisionModel)."""
    patch = encoder.config.backbone_config.patch_size
    return trunk.view(len(trunk), input_size[0] // patch, input_size[1] // patch, -1).permute(0, 3, 1, 2)


def _repeated(vision, count: int):
    """The vision encoder's output for one image as a batch of count (views, no copies)."""
    from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

    return Sam3VisionEncoderOutput(
        last_hidden_state=vision.last_hidden_state.expand(count, *vision.last_hidden_state.shape[1:]),
        fpn_hidden_states=tuple(level.expand(count, *level.shape[1:]) for level in vision.fpn_hidden_states),
        fpn_position_encoding=tuple(level.expand(count, *level.shape[1:]) for level in vision.fpn_position_encoding),
    )


def _one_prompt_float32(outputs, index: int):
    """What post-processing reads of prompt index's output, in float32 (the model may run in bf16)."""
    from transformers.models.sam3.modeling_sam3 import Sam3ImageSegmentationOutput

    return Sam3ImageSegmentationOutput(**{
        name: getattr(outputs, name)[index:index + 1].float()
        for name in ("pred_masks", "pred_boxes", "pred_logits", "presence_logits")
    })


def _segments(boxes: list[torch.Tensor], scores: list[torch.Tensor], class_ids: list[torch.Tensor],
              masks: list[torch.Tensor], classes: list[str], image_size: tuple[int, int],
              nms_iou_threshold: float | None = None) -> Detections:
    """One image's instances of every class, boxes clipped to the image, sorted by score (stable),
    then class-wise NMS when asked for; each score is both the box and the mask score."""
    height, width = image_size
    if not scores:
        boxes, scores, class_ids = [torch.zeros(0, 4)], [torch.zeros(0)], [torch.zeros(0, dtype=torch.long)]
        masks = [torch.zeros(0, height, width, dtype=torch.bool)]
    boxes, scores, class_ids, masks = (torch.cat(parts) for parts in (boxes, scores, class_ids, masks))
    limits = torch.tensor([width, height, width, height], dtype=torch.float32)
    boxes = boxes.float().clamp(min=torch.zeros(4), max=limits)
    order = scores.argsort(descending=True, stable=True)
    if nms_iou_threshold is not None:
        order = order[class_wise_nms(boxes[order], scores[order], class_ids[order], nms_iou_threshold).sort().values]
    scores = scores[order].float().numpy()
    return Detections(xyxy=boxes[order].numpy(), image_size=image_size, masks=masks[order].numpy(), box_scores=scores,
                      mask_scores=scores.copy(), class_ids=class_ids[order].numpy(), classes=tuple(classes))
