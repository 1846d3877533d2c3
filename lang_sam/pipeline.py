"""LangSAM: text prompt -> detector boxes -> one batch of box prompts to a segmenter -> masks; or,
with a text segmenter (SAM 3), text prompt -> masks with no detector."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from lang_sam.detector import DEFAULT_DETECTOR, GroundingDinoDetector
from lang_sam.detector.prompts import parse_classes
from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.errors import InvalidOptionError, InvalidPromptError
from lang_sam.families.base import Detector, MaskSet, Segmenter, TextSegmenter
from lang_sam.families.detectors import load_detector
from lang_sam.families.loading import load_segmenter
from lang_sam.geometry import mask_to_box
from lang_sam.io.images import ImageInput, load_image
from lang_sam.results import LangSAMResult
from lang_sam.segmenter.adapter import SamV1Segmenter
from lang_sam.segmenter.sam import Sam
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD, Thresholds

if TYPE_CHECKING:
    from lang_sam.settings import Settings


@dataclass(frozen=True)
class PreparedImage:
    """An image decoded and resized for both models (LangSAM.prepare), which predict accepts in
    place of the image: preparing the next images in other threads keeps the models busy.

    segmenter_input: what the segmenter's preprocess made (SAM v1: the pixels resized to longest
    side 1024; a text segmenter: the (H, W, 3) image); family: the segmenter family it was made
    for; detector_input: the detector's pixels (None when only the segmenter will see the image, as
    in embed); key: image_key, names the image in the embedding cache.
    """

    original_size: tuple[int, int]
    segmenter_input: Any
    family: str
    detector_input: Any | None
    key: str


class EmbeddingCache:
    """The SAM embeddings of the last few images, by image key; safe to share between threads.

    The lock guards only lookups and inserts, never an encode: two threads asking for the same new
    image encode it once (the second waits for the first), threads asking for different images
    encode them at the same time, and an encode that fails leaves nothing behind.
    """

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = max(1, capacity)
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._encoding: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get_or_encode(self, key: str, encode: Callable[[], Any]) -> Any:
        """The cached embedding of key, or encode()'s, which is then cached (least recently used out)."""
        while True:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key]
                in_progress = self._encoding.get(key)
                if in_progress is None:
                    done = self._encoding[key] = threading.Event()
            if in_progress is None:
                break
            in_progress.wait()  # then look again: cached, or the other encode failed and this one tries
        try:
            embedding = encode()
            with self._lock:
                self._entries[key] = embedding
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            return embedding
        finally:
            with self._lock:
                del self._encoding[key]
            done.set()


@dataclass(frozen=True)
class LoadedSam:
    """One segmenter with its own embedding cache. set_sam swaps the whole object, so a call that
    started on one model finishes on it."""

    model: Segmenter | TextSegmenter
    embeddings: EmbeddingCache

    @property
    def segments_text(self) -> bool:
        return isinstance(self.model, TextSegmenter)


class LangSAM:
    """Text-prompted segmentation: ``LangSAM().predict(image, "car, wheel")``.

    sam_type: "vit_h", "vit_l", "vit_b", a SAM 2.1 / SAM-HQ name ("sam2.1-hiera-tiny",
    "sam-hq-vit-base", ...), "sam3" (text concepts: no detector runs) or the name of a NAME.pth or
    transformers folder NAME in $LANG_SAM_CHECKPOINTS (see lang_sam.registry, ``lang-sam models``);
    sam_checkpoint: Meta's .pth or .safetensors file, a transformers folder (its config.json's
    model_type says the family: sam, sam2, sam_hq, sam3) or a Hugging Face repo id, else found or
    downloaded (lang_sam.io.weights).
    Without either, vit_h; with only a checkpoint, whatever SAM it holds (with both, a name that is
    not an official size only names it); checkpoint_dir: where names are looked up (default
    $LANG_SAM_CHECKPOINTS). detector: a registry name (grounding-dino-*, mm-grounding-dino-*, owlv2-*),
    a repo id or folder of any of those families (config.json's model_type says which), an IDEA
    original .pth, or a loaded detector to share between pipelines; device: "cpu", "cuda", "mps" or None for the
    best available; dtype: float32 or bfloat16. The embeddings of the last embedding_cache_size
    images are kept (SAM v1: 4 MB each), so a new prompt on any of them skips the image encoder.

    One instance may serve many threads: predictions keep no "current image"; each one decodes
    against the embedding of its own image, from the model it started on.
    """

    def __init__(
        self,
        sam_type: str | None = None,
        sam_checkpoint: str | Path | None = None,
        detector: str | Path | Detector = DEFAULT_DETECTOR,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        embedding_cache_size: int = 4,
        *,
        checkpoint_dir: str | Path | None = None,
        ckpt_path: str | Path | None = None,
        sam_ckpt_path: str | Path | None = None,
        gdino_model_ckpt_path: str | Path | None = None,
        gdino_processor_ckpt_path: str | Path | None = None,
    ) -> None:
        # lang-segment-anything's names: v1's ckpt_path, v0.2.x's sam_ckpt_path and gdino_*_ckpt_path.
        sam_checkpoint = _one_of(sam_checkpoint=sam_checkpoint, ckpt_path=ckpt_path, sam_ckpt_path=sam_ckpt_path)
        if gdino_model_ckpt_path is not None:
            if detector != DEFAULT_DETECTOR:
                raise InvalidOptionError("Give the detector once: detector= or gdino_model_ckpt_path=, not both.")
            detector = gdino_model_ckpt_path
        self.embedding_cache_size = max(1, embedding_cache_size)
        self.checkpoint_dir = checkpoint_dir
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if not isinstance(detector, (str, Path)) and (detector.device, detector.dtype) != (self.device, self.dtype):
            raise InvalidOptionError(
                f"The detector runs on {detector.device} in {detector.dtype}, but this LangSAM uses "
                f"{self.device} in {self.dtype}; load both with the same device and dtype."
            )
        self._detector_source = (detector, gdino_processor_ckpt_path)
        self._detector: Detector | None = None if isinstance(detector, (str, Path)) else detector
        self._detector_lock = threading.Lock()
        self.set_sam(sam_type, sam_checkpoint)  # SAM errors (size, weights) come before the detector loads

    def set_sam(self, sam_type: str | None = None, sam_checkpoint: str | Path | None = None) -> None:
        """Load another segmenter (by name, or the one a checkpoint holds); predictions already
        running finish on the one they started with. The detector loads with the first segmenter
        that needs one (not with SAM 3)."""
        segmenter = load_segmenter(sam_type, sam_checkpoint, self.device, self.dtype, self.checkpoint_dir)
        if not isinstance(segmenter, TextSegmenter):
            _ = self.detector
        self._use_segmenter(segmenter)

    @property
    def detector(self) -> Detector:
        """The detector, loaded on first use (a pipeline on SAM 3 alone never loads one)."""
        with self._detector_lock:
            if self._detector is None:
                source, processor = self._detector_source
                self._detector = (load_detector(source, self.device, self.dtype) if processor is None else
                                  GroundingDinoDetector(source, device=self.device, dtype=self.dtype, processor=processor))
            return self._detector

    @classmethod
    def from_settings(cls, settings: Settings) -> LangSAM:
        """The pipeline the settings name (as every lang-sam command builds it)."""
        return cls(settings.sam_type, settings.sam_checkpoint, settings.detector, device=settings.device,
                   dtype=settings.dtype, checkpoint_dir=settings.checkpoint_dir)

    @classmethod
    def from_parts(
        cls, sam: Sam | Segmenter | TextSegmenter, detector: Detector | None, sam_type: str = "custom",
        embedding_cache_size: int = 4,
    ) -> LangSAM:
        """A pipeline around an already built SAM (any encoder size, e.g. fine-tuned) or segmenter
        adapter, and detector (None with a text segmenter); it runs on the detector's device and
        dtype, else the segmenter's."""
        pipeline = cls.__new__(cls)
        pipeline.embedding_cache_size = max(1, embedding_cache_size)
        pipeline.checkpoint_dir = None
        reference = detector if detector is not None else sam
        if isinstance(reference, Sam):
            reference = SamV1Segmenter(reference, sam_type)
        pipeline.device, pipeline.dtype = reference.device, reference.dtype
        pipeline._detector, pipeline._detector_source = detector, (DEFAULT_DETECTOR, None)
        pipeline._detector_lock = threading.Lock()
        segmenter = SamV1Segmenter(sam.to(pipeline.device), sam_type) if isinstance(sam, Sam) else sam
        pipeline._use_segmenter(segmenter)
        return pipeline

    def _use_segmenter(self, segmenter: Segmenter | TextSegmenter) -> None:
        self._sam = LoadedSam(segmenter, EmbeddingCache(self.embedding_cache_size))

    @property
    def sam_type(self) -> str:
        return self._sam.model.name

    @property
    def segments_text(self) -> bool:
        """Whether the segmenter takes the text prompt itself (SAM 3): then no detector runs."""
        return self._sam.segments_text

    @property
    def segmenter(self) -> Segmenter | TextSegmenter:
        """The segmenter adapter now in use (lang_sam.families)."""
        return self._sam.model

    @property
    def sam(self) -> Sam:
        """The SAM v1 model itself, for what only SAM v1 runs (ONNX export, SamPredictor); another
        family is an InvalidOptionError that says what to choose."""
        model = self._sam.model
        if not isinstance(model, SamV1Segmenter):
            raise InvalidOptionError(
                f"{model.name} is not a SAM v1 model; ONNX export and SamPredictor run "
                "SAM v1: choose vit_h, vit_l, vit_b or a SAM v1 checkpoint of your own."
            )
        return model.sam

    def track(self, video, prompt: str, video_segmenter=None, **options):
        """Track what prompt names through a video, one lang_sam.families.base.TrackedFrame per frame
        read, with this pipeline's detector and a SAM 2.1 video model, or SAM 3 video alone, with no
        detector loaded (video_segmenter: a loaded one, a SAM 2.1 or SAM 3 name, a Sam2VideoModel or
        Sam3VideoModel folder or repo id; default sam2.1-hiera-tiny). options: start, end, stride
        (lang_sam.video.frames.VideoFrames) and those of lang_sam.video.tracker.track."""
        from lang_sam.video.tracker import open_and_track

        return open_and_track(video, prompt, lambda: self.detector, video_segmenter, self.device, self.dtype, **options)

    def describe(self) -> str:
        """What runs: segmenter name and size, detector, device and dtype (as the app, the server
        and ``lang-sam predict -v`` show it)."""
        model = self._sam.model
        size = (f"encoder width {model.encoder_width()}" if isinstance(model, SamV1Segmenter)
                else f"{model.parameter_count() / 1e6:.1f}M parameters")
        runs = f"{model.name} ({size})" if self._sam.segments_text else f"SAM {model.name} ({size}) + {self.detector.name}"
        return f"{runs} on {self.device}, {str(self.dtype).removeprefix('torch.')}"

    @property
    def embeddings(self) -> EmbeddingCache:
        """The current segmenter's embedding cache."""
        return self._sam.embeddings

    def prepare(self, image: ImageInput) -> PreparedImage:
        """Decode the image and resize it for the segmenter and for the detector; safe to call from
        other threads while predict runs (nothing here touches a model)."""
        array = load_image(image)
        if self._sam.segments_text:
            return _prepare_for_segmenter(self._sam.model, array)
        prepared = _prepare_for_segmenter(self._sam.model, array)
        return PreparedImage(prepared.original_size, prepared.segmenter_input, prepared.family,
                             self.detector.preprocess(Image.fromarray(array)), prepared.key)

    def embed(self, image: ImageInput | PreparedImage) -> Any:
        """The segmenter's embedding of one image, kept in the embedding cache under its image_key,
        so that predict on the same image skips the image encoder; decode answers clicks against it."""
        loaded = self._promptable("embed")
        return self._embedding(loaded, image if isinstance(image, PreparedImage) else _prepare_for_segmenter(loaded.model, load_image(image)))

    def _promptable(self, what: str) -> LoadedSam:
        """The loaded segmenter, when it takes clicks and boxes (SAM 3 here takes text only)."""
        loaded = self._sam
        if loaded.segments_text:
            raise InvalidPromptError(
                f"{loaded.model.name} segments text prompts; {what} needs a promptable segmenter (vit_h, vit_l, vit_b, "
                "sam2.1-hiera-*, sam-hq-vit-*)."
            )
        return loaded

    def decode(
        self,
        embedding: Any,
        points=None,
        point_labels=None,
        boxes=None,
        mask_input=None,
        multimask_output: bool | None = None,
        label: str = "object",
    ) -> LangSAMResult:
        """Your clicks and boxes (as predict takes them) against an embedding that embed made with
        this SAM: no image, no detector, no encoder; the result predict gives for that image and
        those prompts without a text prompt. A client that clicks many times encodes once."""
        if all(value is None for value in (points, boxes, mask_input)):
            raise InvalidPromptError("decode needs points (with point_labels) or boxes; a text prompt needs predict(image, prompt).")
        loaded = self._promptable("decode")
        _check_multimask(multimask_output)
        user = check_user_prompts(points, point_labels, boxes, mask_input, embedding.original_size)
        return self._segment(loaded, embedding.original_size, lambda: embedding, None, None, multimask_output, user, label)

    def _embedding(self, loaded: LoadedSam, image: PreparedImage) -> Any:
        if image.family != loaded.model.family:
            raise InvalidOptionError(
                f"This image was prepared for a {image.family} model, but {loaded.model.name} is {loaded.model.family}; "
                "prepare it again with this pipeline (LangSAM.prepare)."
            )
        return loaded.embeddings.get_or_encode(image.key, lambda: loaded.model.embed(image.segmenter_input))

    def predict(
        self,
        images: ImageInput | PreparedImage | list[ImageInput | PreparedImage] | None = None,
        prompts: str | list[str] | None = None,
        box_threshold: float = BOX_THRESHOLD,
        text_threshold: float = TEXT_THRESHOLD,
        max_detections: int | None = None,
        nms_iou_threshold: float | None = None,
        multimask_output: bool | None = None,
        *,
        points=None,
        point_labels=None,
        boxes=None,
        mask_input=None,
        label: str = "object",
        classes: Sequence[str] | None = None,
        image_pil: ImageInput | None = None,
        text_prompt: str | None = None,
        images_pil: list[ImageInput] | None = None,
        texts_prompt: list[str] | None = None,
    ) -> LangSAMResult | list[LangSAMResult]:
        """Detect the prompt's classes, then segment every box in one batch of SAM box prompts.

        images: one image (path, PIL image, RGB array, or what prepare made of one) or a list;
        prompts: one for all images or one per image; or classes: a list of class names for all
        images, taken as they are (a name may hold a period or a comma). Returns one LangSAMResult
        per image (a single one for a single image). max_detections keeps only the highest-scoring boxes;
        nms_iou_threshold, when set, drops boxes of a class that overlap a better one of that class
        more than this. multimask_output: SAM proposes three masks per prompt and the one with the
        highest predicted IoU is kept (SAM's own rule for ambiguous prompts); False takes SAM's
        single-mask output, the one SAM's authors advise for a box; None (the default) is False,
        except for a single click with no box, where SAM's demo takes the best of three.

        Your own prompts, for one image, with or without a text prompt, in image pixels: boxes (M, 4)
        xyxy, each an object; points (N, 2) xy with point_labels (N,) (1 object, 0 background;
        default all 1), together one object: the detected or given object whose box holds the
        first object point (the smallest such box) is refined with the points, or, if none holds
        it, the points are a new object; mask_input (256, 256) a previous result's low_res_logits
        row for that object. Objects you give are named label and score 1.0.
        lang-segment-anything's keywords work too: v1's image_pil / text_prompt, v0.2.x's
        images_pil / texts_prompt.
        """
        images = _one_of(images=images, image_pil=image_pil, images_pil=images_pil)
        prompts = _one_of(prompts=prompts, text_prompt=text_prompt, texts_prompt=texts_prompt, classes=classes)
        own = any(value is not None for value in (points, boxes, mask_input))
        if images is None or (prompts is None and not own):
            raise InvalidOptionError("predict needs images and prompts: model.predict(image, \"car, wheel\"), or points or boxes.")
        single = not isinstance(images, list)
        if own and not single:
            raise InvalidPromptError("points, boxes and mask_input are for one image: call predict once per image.")
        if classes is not None:
            if isinstance(classes, str):
                raise InvalidPromptError(f"classes is a list of class names, e.g. [{classes!r}]; a string goes in prompts.")
            prompts = [list(classes)] * (1 if single else len(images))
        detect = not (prompts is None or (isinstance(prompts, str) and not prompts.strip() and own))
        loaded = self._sam  # one model for the whole call, whatever set_sam does meanwhile
        Thresholds(box_threshold, text_threshold, nms_iou_threshold, max_detections)  # checked before any model runs
        _check_multimask(multimask_output)
        if loaded.segments_text:
            if own:
                self._promptable("points, boxes and mask_input")
            return self._segment_text(loaded, images, prompts, single, box_threshold, max_detections, nms_iou_threshold)

        def prepare(image: ImageInput) -> PreparedImage:  # clicks and boxes alone: no detector pixels
            return self.prepare(image) if detect else _prepare_for_segmenter(loaded.model, load_image(image))

        prepared = [image if isinstance(image, PreparedImage) else prepare(image) for image in ([images] if single else images)]
        user = check_user_prompts(points, point_labels, boxes, mask_input, prepared[0].original_size) if own else None
        if not detect:
            detections = [None]  # clicks and boxes alone: no detector
        else:
            detections = self.detector.detect(
                [image.detector_input for image in prepared], prompts, box_threshold=box_threshold,
                text_threshold=text_threshold, nms_iou_threshold=nms_iou_threshold,
            )
        results = [
            self._segment(loaded, image.original_size, lambda image=image: self._embedding(loaded, image), found,
                          max_detections, multimask_output, user, label)
            for image, found in zip(prepared, detections)
        ]
        return results[0] if single else results

    def _segment_text(self, loaded: LoadedSam, images, prompts, single: bool, box_threshold: float,
                      max_detections: int | None, nms_iou_threshold: float | None) -> LangSAMResult | list[LangSAMResult]:
        """A text segmenter's masks for each image's classes (SAM 3: no detector, no box prompts)."""
        arrays = [load_image(image) for image in ([images] if single else images)]
        per_image = [prompts] * len(arrays) if isinstance(prompts, str) else list(prompts)  # as Detector.detect takes them
        if len(per_image) != len(arrays):
            raise InvalidOptionError(f"Got {len(arrays)} images but {len(per_image)} prompts; give one prompt or one per image.")
        classes = [parse_classes(prompt) for prompt in per_image]
        segments = loaded.model.segment_text(arrays, classes, box_threshold=box_threshold, nms_iou_threshold=nms_iou_threshold)
        results = []
        for array, found in zip(arrays, segments):
            keep = slice(0, max_detections)
            detections = found.detections
            scores = detections.scores[keep].float().numpy()
            results.append(LangSAMResult(
                masks=found.masks[keep].astype(bool), boxes=detections.boxes[keep].float().numpy().reshape(-1, 4),
                phrases=[detections.classes[i] for i in detections.class_ids[keep].tolist()], logits=scores,
                mask_scores=scores.copy(), class_ids=detections.class_ids[keep].numpy().astype(np.int64),
                classes=list(detections.classes), image_size=array.shape[:2],
            ))
        return results[0] if single else results

    def _segment(
        self, loaded: LoadedSam, original_size: tuple[int, int], embed: Callable[[], Any], found,
        max_detections: int | None, multimask_output: bool | None, user: UserPrompts | None = None, label: str = "object",
    ) -> LangSAMResult:
        """Decode the found boxes and the user's prompts; embed() is called only if there is something to decode."""
        keep = slice(0, max_detections)
        boxes = found.boxes[keep].float() if found is not None else torch.zeros(0, 4)
        phrases = [found.classes[i] for i in found.class_ids[keep].tolist()] if found is not None else []
        scores = found.scores[keep].float() if found is not None else torch.zeros(0)
        classes = list(found.classes) if found is not None else []
        detected = len(phrases)
        click_target = None  # index of the object the clicks refine
        if user is not None:
            count = len(user.boxes)
            boxes = torch.cat([torch.from_numpy(user.boxes), boxes])
            phrases = [label] * count + phrases
            scores = torch.cat([torch.ones(count), scores])
            if user.points is not None:
                click_target = _box_holding(boxes, user.points[user.labels == 1][0]) if (user.labels == 1).any() else None
                if click_target is None:  # the clicks are an object of their own, first
                    boxes = torch.cat([torch.full((1, 4), float("nan")), boxes])
                    phrases = [label] + phrases
                    scores = torch.cat([torch.ones(1), scores])
                    click_target = 0
            if len(phrases) > detected and label not in classes:  # objects of the user's own
                classes = classes + [label]
        height, width = original_size
        masks = np.zeros((len(boxes), height, width), dtype=bool)
        mask_scores = np.zeros(len(boxes), dtype=np.float32)
        low_res = np.zeros((len(boxes), 256, 256), dtype=np.float32)
        candidates: dict[int, tuple] = {}  # object index -> its (3, H, W) masks and (3,) scores, when multimask
        if len(boxes):
            embedding = embed()
            plain = [i for i in range(len(boxes)) if i != click_target]
            if plain:
                decoded = loaded.model.decode(embedding, boxes=boxes[plain], multimask_output=bool(multimask_output))
                _place(decoded, plain, masks, mask_scores, low_res, candidates)
            if click_target is not None:
                box = boxes[click_target : click_target + 1]
                single_click = len(user.points) == 1 and bool(torch.isnan(box).all())
                decoded = loaded.model.decode(
                    embedding,
                    point_coords=torch.from_numpy(user.points)[None],
                    point_labels=torch.from_numpy(user.labels)[None],
                    boxes=None if torch.isnan(box).all() else box,
                    mask_input=None if user.mask_input is None else torch.from_numpy(user.mask_input)[None, None],
                    multimask_output=single_click if multimask_output is None else bool(multimask_output),
                )
                _place(decoded, [click_target], masks, mask_scores, low_res, candidates)
                if torch.isnan(box).all():  # the box around the clicked mask
                    boxes[click_target] = torch.from_numpy(mask_to_box(masks[click_target]))
        order = torch.argsort(scores, descending=True, stable=True).numpy()
        candidate_masks = candidate_scores = None
        if candidates:
            candidate_masks = np.zeros((len(boxes), 3, height, width), dtype=bool)
            candidate_scores = np.full((len(boxes), 3), np.nan, dtype=np.float32)
            for index in range(len(boxes)):
                candidate_masks[index], candidate_scores[index] = candidates.get(
                    index, (np.stack([masks[index], *np.zeros((2, height, width), bool)]), [mask_scores[index], np.nan, np.nan]))
            candidate_masks, candidate_scores = candidate_masks[order], candidate_scores[order]
        return LangSAMResult(
            masks=masks[order],
            boxes=boxes.numpy().astype(np.float32).reshape(-1, 4)[order],
            phrases=[phrases[i] for i in order],
            logits=scores.numpy().astype(np.float32)[order],
            mask_scores=mask_scores[order],
            class_ids=np.array([classes.index(phrases[i]) for i in order], dtype=np.int64),
            classes=classes,
            image_size=(height, width),
            low_res_logits=low_res[order],
            candidates=candidate_masks,
            candidate_scores=candidate_scores,
        )


@dataclass(frozen=True)
class UserPrompts:
    """Checked prompts of one image, in image pixels: boxes (M, 4); points (N, 2) with labels (N,)
    or None; mask_input (256, 256) or None."""

    boxes: np.ndarray
    points: np.ndarray | None
    labels: np.ndarray | None
    mask_input: np.ndarray | None


def check_user_prompts(points, point_labels, boxes, mask_input, image_size: tuple[int, int]) -> UserPrompts:
    """UserPrompts, or the InvalidPromptError that names what is wrong."""
    height, width = image_size
    checked_boxes = np.zeros((0, 4), np.float32)
    if boxes is not None:
        checked_boxes = _finite_array(boxes, "boxes").reshape(-1, 4) if np.size(boxes) % 4 == 0 and np.size(boxes) else None
        if checked_boxes is None:
            raise InvalidPromptError(f"boxes must be (M, 4) x1, y1, x2, y2 in pixels, got shape {np.shape(boxes)}.")
        bad = np.flatnonzero((checked_boxes[:, 2] < checked_boxes[:, 0]) | (checked_boxes[:, 3] < checked_boxes[:, 1]))
        if len(bad):
            raise InvalidPromptError(f"Box {bad[0]} {checked_boxes[bad[0]].tolist()} has x2 < x1 or y2 < y1; give x1, y1, x2, y2.")
        _inside(checked_boxes.reshape(-1, 2), width, height, "box corner")
    checked_points = checked_labels = None
    if points is not None:
        checked_points = _finite_array(points, "points")
        if checked_points.ndim == 1 and checked_points.size == 2:
            checked_points = checked_points[None]
        if checked_points.ndim != 2 or checked_points.shape[1] != 2 or not len(checked_points):
            raise InvalidPromptError(f"points must be (N, 2) x, y pixels, got shape {np.shape(points)}.")
        _inside(checked_points, width, height, "point")
        checked_labels = np.ones(len(checked_points), np.int64) if point_labels is None else np.asarray(point_labels).reshape(-1)
        if len(checked_labels) != len(checked_points):
            raise InvalidPromptError(f"Got {len(checked_points)} points but {len(checked_labels)} point_labels; give one label per point.")
        if not np.isin(checked_labels, (0, 1)).all():
            raise InvalidPromptError(f"point_labels are 1 (object) or 0 (background), got {sorted(set(checked_labels.tolist()))}.")
        checked_labels = checked_labels.astype(np.int64)
    elif point_labels is not None:
        raise InvalidPromptError("point_labels were given without points.")
    checked_mask = None
    if mask_input is not None:
        checked_mask = np.asarray(mask_input, dtype=np.float32).squeeze()
        if checked_mask.shape != (256, 256):
            raise InvalidPromptError(f"mask_input is a (256, 256) low-res mask (a result's low_res_logits row), got shape {np.shape(mask_input)}.")
        if checked_points is None:
            raise InvalidPromptError("mask_input refines the object your points name: give points with it.")
    return UserPrompts(checked_boxes, checked_points, checked_labels, checked_mask)


def _finite_array(value, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidPromptError(f"{name} must be numbers, got {value!r}.") from None
    if not np.isfinite(array).all():
        raise InvalidPromptError(f"{name} must be finite numbers, got {array.tolist()}.")
    return array


def _inside(xy: np.ndarray, width: int, height: int, what: str) -> None:
    outside = np.flatnonzero((xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height))
    if len(outside):
        raise InvalidPromptError(f"The {what} {xy[outside[0]].tolist()} is outside the {width}x{height} image.")


def _box_holding(boxes: torch.Tensor, point: np.ndarray) -> int | None:
    """Index of the smallest box holding point, or None."""
    x, y = float(point[0]), float(point[1])
    holding = [i for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()) if x0 <= x <= x1 and y0 <= y <= y1]
    return min(holding, key=lambda i: float((boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1]))) if holding else None


def _place(decoded: MaskSet, indices: list[int], masks: np.ndarray, mask_scores: np.ndarray, low_res: np.ndarray,
           candidates: dict[int, tuple]) -> None:
    """Put the segmenter's best candidate of each prompt (by predicted IoU) at indices, and all
    three into candidates when it decoded with multimask output."""
    mask_tensor, iou, low_res_logits = decoded.masks, decoded.iou, decoded.low_res_logits
    best = iou.argmax(dim=1)
    rows = torch.arange(len(best))
    masks[indices] = mask_tensor[rows, best].cpu().numpy()
    mask_scores[indices] = iou[rows, best].float().cpu().numpy()
    low_res[indices] = low_res_logits[rows, best].float().cpu().numpy()
    if iou.shape[1] > 1:
        for row, index in enumerate(indices):
            candidates[index] = (mask_tensor[row].cpu().numpy(), iou[row].float().cpu().numpy())


def _prepare_for_segmenter(segmenter: Segmenter | TextSegmenter, array: np.ndarray) -> PreparedImage:
    """PreparedImage without the detector's pixels, for what only the segmenter sees (embed, clicks
    alone, a text segmenter)."""
    segmenter_input = array if isinstance(segmenter, TextSegmenter) else segmenter.preprocess(array)
    return PreparedImage(array.shape[:2], segmenter_input, segmenter.family, None, image_key(array))


def image_key(array: np.ndarray) -> str:
    """The content hash (pixels and shape) that names an image in the embedding caches."""
    return hashlib.blake2b(array.tobytes(), digest_size=16, key=repr(array.shape).encode()).hexdigest()


def _check_multimask(multimask_output) -> None:
    if multimask_output is not None and not isinstance(multimask_output, (bool, np.bool_)):
        raise InvalidOptionError(f"multimask_output must be True, False or None, got {multimask_output!r}.")


def _one_of(**names):
    """The one value given under any of these names (None if none); two given is an error."""
    given = {name: value for name, value in names.items() if value is not None}
    if len(given) > 1:
        raise InvalidOptionError(f"{' and '.join(given)} name the same thing; give one of them.")
    return next(iter(given.values()), None)
