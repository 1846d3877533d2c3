"""LangSAM: text prompt -> Grounding DINO boxes -> one batch of SAM box prompts -> masks."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from lang_sam.detector import DEFAULT_DETECTOR, DetectorInput, GroundingDinoDetector
from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.errors import InvalidOptionError, InvalidPromptError
from lang_sam.io.images import ImageInput, load_image
from lang_sam.results import LangSAMResult
from lang_sam.segmenter import processing
from lang_sam.segmenter.build import load_sam
from lang_sam.segmenter.predictor import ImageEmbedding, decode_prompts, encode_image
from lang_sam.segmenter.sam import Sam

if TYPE_CHECKING:
    from lang_sam.settings import Settings


@dataclass(frozen=True)
class PreparedImage:
    """An image decoded and resized for both models (LangSAM.prepare), which predict accepts in
    place of the image: preparing the next images in other threads keeps the models busy.

    sam_input: (h, w, 3) uint8, longest side 1024; detector_input: the detector's pixels (None when
    only SAM will see the image, as in embed); key: image_key, names the image in the embedding cache.
    """

    original_size: tuple[int, int]
    sam_input: np.ndarray
    detector_input: DetectorInput | None
    key: str


class EmbeddingCache:
    """The SAM embeddings of the last few images, by image key; safe to share between threads.

    The lock guards only lookups and inserts, never an encode: two threads asking for the same new
    image encode it once (the second waits for the first), threads asking for different images
    encode them at the same time, and an encode that fails leaves nothing behind.
    """

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = max(1, capacity)
        self._entries: OrderedDict[str, ImageEmbedding] = OrderedDict()
        self._encoding: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get_or_encode(self, key: str, encode: Callable[[], ImageEmbedding]) -> ImageEmbedding:
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
    """One SAM with its name and its own embedding cache. set_sam swaps the whole object, so a call
    that started on one model finishes on it."""

    name: str
    model: Sam
    embeddings: EmbeddingCache


class LangSAM:
    """Text-prompted segmentation: ``LangSAM().predict(image, "car, wheel")``.

    sam_type: "vit_h", "vit_l", "vit_b" or the name of a NAME.pth in $LANG_SAM_CHECKPOINTS (see
    lang_sam.registry); sam_checkpoint: Meta's .pth or .safetensors file, a transformers SAM folder or a
    Hugging Face repo id, else found or downloaded (lang_sam.io.weights).
    Without either, vit_h; with only a checkpoint, whatever SAM it holds (with both, a name that is
    not an official size only names it); checkpoint_dir: where names are looked up (default
    $LANG_SAM_CHECKPOINTS). detector: a Grounding DINO repo id, folder or original .pth, or a loaded
    GroundingDinoDetector to share between pipelines; device: "cpu", "cuda", "mps" or None for the
    best available; dtype: float32 or bfloat16. The SAM embeddings of the last embedding_cache_size
    images are kept (4 MB each), so a new prompt on any of them skips the image encoder.

    One instance may serve many threads: predictions keep no "current image"; each one decodes
    against the embedding of its own image, from the model it started on.
    """

    def __init__(
        self,
        sam_type: str | None = None,
        sam_checkpoint: str | Path | None = None,
        detector: str | Path | GroundingDinoDetector = DEFAULT_DETECTOR,
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
        self.set_sam(sam_type, sam_checkpoint)  # SAM errors (size, weights) come before the detector loads
        if isinstance(detector, GroundingDinoDetector):
            if (detector.device, detector.dtype) != (self.device, self.dtype):
                raise InvalidOptionError(
                    f"The detector runs on {detector.device} in {detector.dtype}, but this LangSAM uses "
                    f"{self.device} in {self.dtype}; load both with the same device and dtype."
                )
            self.detector = detector
        else:
            self.detector = GroundingDinoDetector(
                detector, device=self.device, dtype=self.dtype, processor=gdino_processor_ckpt_path
            )

    def set_sam(self, sam_type: str | None = None, sam_checkpoint: str | Path | None = None) -> None:
        """Load another SAM (by name, or the one a checkpoint holds); predictions already running
        finish on the SAM they started with."""
        self._use_sam(*load_sam(sam_type, sam_checkpoint, self.dtype, self.checkpoint_dir))

    @classmethod
    def from_settings(cls, settings: Settings) -> LangSAM:
        """The pipeline the settings name (as every lang-sam command builds it)."""
        return cls(settings.sam_type, settings.sam_checkpoint, settings.detector, device=settings.device,
                   dtype=settings.dtype, checkpoint_dir=settings.checkpoint_dir)

    @classmethod
    def from_parts(
        cls, sam: Sam, detector: GroundingDinoDetector, sam_type: str = "custom", embedding_cache_size: int = 4
    ) -> LangSAM:
        """A pipeline around an already built SAM (any encoder size, e.g. fine-tuned) and detector;
        it runs on the detector's device and dtype."""
        pipeline = cls.__new__(cls)
        pipeline.embedding_cache_size = max(1, embedding_cache_size)
        pipeline.checkpoint_dir = None
        pipeline.device, pipeline.dtype = detector.device, detector.dtype
        pipeline.detector = detector
        pipeline._use_sam(sam_type, sam.eval())
        return pipeline

    def _use_sam(self, sam_type: str, sam: Sam) -> None:
        self._sam = LoadedSam(sam_type, sam.to(self.device).eval(), EmbeddingCache(self.embedding_cache_size))

    @property
    def sam_type(self) -> str:
        return self._sam.name

    @property
    def sam(self) -> Sam:
        return self._sam.model

    def describe(self) -> str:
        """What runs: SAM name and encoder width, detector, device and dtype (as the app, the server
        and ``lang-sam predict -v`` show it)."""
        width = self.sam.image_encoder.patch_embed.proj.out_channels
        return (
            f"SAM {self.sam_type} (encoder width {width}) + {self.detector.name} on {self.device}, "
            f"{str(self.dtype).removeprefix('torch.')}"
        )

    @property
    def embeddings(self) -> EmbeddingCache:
        """The current SAM's embedding cache."""
        return self._sam.embeddings

    def prepare(self, image: ImageInput) -> PreparedImage:
        """Decode the image and resize it for SAM and for the detector; safe to call from other
        threads while predict runs (nothing here touches a model)."""
        array = load_image(image)
        return PreparedImage(
            original_size=array.shape[:2],
            sam_input=processing.resize_image(array),
            detector_input=self.detector.preprocess(Image.fromarray(array)),
            key=image_key(array),
        )

    def embed(self, image: ImageInput | PreparedImage) -> ImageEmbedding:
        """SAM's embedding of one image, kept in the embedding cache under its image_key, so that
        predict on the same image skips the image encoder; decode answers clicks against it."""
        return self._embedding(self._sam, image if isinstance(image, PreparedImage) else _prepare_for_sam(image))

    def decode(
        self,
        embedding: ImageEmbedding,
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
        _check_multimask(multimask_output)
        user = check_user_prompts(points, point_labels, boxes, mask_input, embedding.original_size)
        return self._segment(self._sam, embedding.original_size, lambda: embedding, None, None, multimask_output, user, label)

    def _embedding(self, loaded: LoadedSam, image: PreparedImage) -> ImageEmbedding:
        return loaded.embeddings.get_or_encode(
            image.key,
            lambda: encode_image(loaded.model, torch.from_numpy(image.sam_input).permute(2, 0, 1)[None], image.original_size),
        )

    def predict(
        self,
        images: ImageInput | PreparedImage | list[ImageInput | PreparedImage] | None = None,
        prompts: str | list[str] | None = None,
        box_threshold: float = 0.3,
        text_threshold: float = 0.25,
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
        prepare = self.prepare if detect else _prepare_for_sam  # clicks and boxes alone: no detector pixels
        prepared = [image if isinstance(image, PreparedImage) else prepare(image) for image in ([images] if single else images)]
        if max_detections is not None and (isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 0):
            raise InvalidOptionError(f"max_detections must be a whole number >= 0, got {max_detections!r}.")
        _check_multimask(multimask_output)
        user = check_user_prompts(points, point_labels, boxes, mask_input, prepared[0].original_size) if own else None
        if not detect:
            detections = [None]  # clicks and boxes alone: no detector
        else:
            detections = self.detector.detect(
                [image.detector_input for image in prepared], prompts, box_threshold=box_threshold,
                text_threshold=text_threshold, nms_iou_threshold=nms_iou_threshold,
            )
        loaded = self._sam  # one model for the whole call, whatever set_sam does meanwhile
        results = [
            self._segment(loaded, image.original_size, lambda image=image: self._embedding(loaded, image), found,
                          max_detections, multimask_output, user, label)
            for image, found in zip(prepared, detections)
        ]
        return results[0] if single else results

    def _segment(
        self, loaded: LoadedSam, original_size: tuple[int, int], embed: Callable[[], ImageEmbedding], found,
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
                decoded = decode_prompts(loaded.model, embedding, boxes=boxes[plain].to(self.device),
                                         multimask_output=bool(multimask_output), prompts_in_image_pixels=True)
                _place(decoded, plain, masks, mask_scores, low_res, candidates)
            if click_target is not None:
                box = boxes[click_target : click_target + 1]
                single_click = len(user.points) == 1 and bool(torch.isnan(box).all())
                decoded = decode_prompts(
                    loaded.model, embedding,
                    point_coords=torch.from_numpy(user.points)[None].to(self.device),
                    point_labels=torch.from_numpy(user.labels)[None].to(self.device),
                    boxes=None if torch.isnan(box).all() else box.to(self.device),
                    mask_input=None if user.mask_input is None else torch.from_numpy(user.mask_input)[None, None].to(self.device),
                    multimask_output=single_click if multimask_output is None else bool(multimask_output),
                    prompts_in_image_pixels=True,
                )
                _place(decoded, [click_target], masks, mask_scores, low_res, candidates)
                if torch.isnan(box).all():  # the box around the clicked mask
                    rows, columns = np.nonzero(masks[click_target])
                    boxes[click_target] = torch.tensor(
                        [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1] if len(rows) else [0, 0, 0, 0],
                        dtype=torch.float32)
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


def _place(decoded, indices: list[int], masks: np.ndarray, mask_scores: np.ndarray, low_res: np.ndarray,
           candidates: dict[int, tuple]) -> None:
    """Put decode_prompts' best candidate of each prompt (by predicted IoU) at indices, and all
    three into candidates when it decoded with multimask output."""
    mask_tensor, iou, low_res_logits = decoded
    best = iou.argmax(dim=1)
    rows = torch.arange(len(best))
    masks[indices] = mask_tensor[rows, best].cpu().numpy()
    mask_scores[indices] = iou[rows, best].float().cpu().numpy()
    low_res[indices] = low_res_logits[rows, best].float().cpu().numpy()
    if iou.shape[1] > 1:
        for row, index in enumerate(indices):
            candidates[index] = (mask_tensor[row].cpu().numpy(), iou[row].float().cpu().numpy())


def _prepare_for_sam(image: ImageInput) -> PreparedImage:
    """PreparedImage without the detector's pixels, for what only SAM sees (embed, clicks alone)."""
    array = load_image(image)
    return PreparedImage(array.shape[:2], processing.resize_image(array), None, image_key(array))


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
