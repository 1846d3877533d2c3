"""The interfaces every model family sits behind, so LangSAM, the CLI, the app and the server run
any registry entry the same way. Each is stateless after loading: one instance serves many threads.

- Segmenter: an image in, an embedding out; prompts (points, boxes, a mask) against an embedding,
  masks out. SAM v1 (our own code), transformers' SamModel, SamHQModel and Sam2Model.
- TextSegmenter: an image and class names in, named masks out, with no separate detector (SAM 3).
- Detector: images and class names in, boxes out, each labelled with one of the user's classes
  (Grounding DINO, MM-Grounding-DINO, OWLv2).
- VideoSegmenter: starts a VideoStream per video, which takes frames one at a time, carries its
  objects' masks from frame to frame and takes box prompts for new ones (SAM 2.1 video).
- ConceptTracker: frames and class names in, tracked objects out, detecting and tracking by
  itself with no separate detector (SAM 3 video).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from lang_sam.results import encode_rles
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD, Detections, Exemplars, ImageEmbedding, MaskSet, ObjectPrompt, SegmenterInput


@runtime_checkable
class Segmenter(Protocol):
    """A promptable segmenter: embed once per image, decode many prompts against it.

    decode is the batched kernel and answers in tensors (MaskSet: B prompts x M candidates, with the
    low-res logits a later decode refines): Meta's predictor and segment-everything need exactly
    that, and Detections (one mask per object) could only hold it repacked. Objects as Detections
    come from lang_sam.pipeline.segment.segment_objects, the one composition every caller uses.

    name: the registry name or path it was loaded from; family: its config model_type ("sam" for
    SAM v1, "sam2", "sam_hq", "sam3"); device, dtype: where and how it runs; mask_input_size: (S, S)
    of the low-res logits decode takes and returns (SAM v1, SAM 2.1, SAM-HQ: 256; SAM 3: 288).
    """

    name: str
    family: str
    device: torch.device
    dtype: torch.dtype
    mask_input_size: tuple[int, int]

    def preprocess(self, image: np.ndarray) -> SegmenterInput:
        """The model's input for one (H, W, 3) uint8 RGB image; touches no model, so it may run in
        other threads ahead of embed."""

    def embed(self, prepared: SegmenterInput) -> ImageEmbedding:
        """The immutable embedding of what preprocess made (of this segmenter only)."""

    def decode(
        self,
        embedding: ImageEmbedding,
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = False,
        upscale: bool = True,
    ) -> MaskSet:
        """Masks for B prompts, in original image pixels: point_coords (B, N, 2) xy with
        point_labels (B, N) (1 object, 0 background); boxes (B, 4) xyxy; mask_input (B, 1, S, S)
        low-res logits of an earlier decode (S: mask_input_size). B may be large: memory is bounded by decoding in chunks.
        upscale False: nothing is taken to image size (MaskSet.masks is None), for callers that
        filter on the IoU first and upscale only what they keep (segment-everything)."""

    def upscale_logits(self, embedding: ImageEmbedding, low_res_logits: torch.Tensor) -> torch.Tensor:
        """(B, M, 256, 256) low-res logits of a decode against embedding -> (B, M, H, W) float32
        mask logits at image size (on the segmenter's device): decode's masks are exactly these > 0.
        Segment-everything's stability score thresholds them at other levels."""

    def parameter_count(self) -> int:
        """Number of weights, as ``lang-sam models`` and describe() report it."""

@runtime_checkable
class TextSegmenter(Protocol):
    """Segments the user's classes directly from text (SAM 3's concept prompts): no detector runs."""

    name: str
    family: str
    device: torch.device
    dtype: torch.dtype

    def preprocess(self, image: np.ndarray) -> SegmenterInput:
        """The model's input for one (H, W, 3) uint8 RGB image; touches no model."""

    def embed(self, prepared: SegmenterInput) -> ImageEmbedding:
        """The immutable embedding of what preprocess made, which segment_text reads (and, with
        SAM 3's tracker, decode too: one image encoder pass for text and clicks)."""

    def segment_text(
        self, images: Sequence[np.ndarray], classes: Sequence[Sequence[str]], box_threshold: float = BOX_THRESHOLD,
        nms_iou_threshold: float | None = None, exemplars: Sequence[Exemplars | None] | None = None,
        embeds: Sequence[Callable[[], ImageEmbedding]] | None = None,
    ) -> list[Detections]:
        """For each (H, W, 3) uint8 image, the instances of each of its classes scoring above
        box_threshold (as the model's own post-processing keeps them), best first, with masks; class
        ids index exactly the given class names; the model's one score per instance is both its box
        and its mask score. exemplars: one Exemplars (or None) per image, example boxes of its one
        class, or of a concept with no name (then the image's class list is empty). embeds: one
        callable per image giving embed(preprocess(image)) (a pipeline's cache), or None."""

@runtime_checkable
class Detector(Protocol):
    """An open-vocabulary detector: every label it returns is one of that image's classes."""

    name: str
    device: torch.device
    dtype: torch.dtype

    def preprocess(self, image: Image.Image) -> Any:
        """The model's input for one RGB image; detect takes it in place of the image."""

    def detect(
        self,
        images: Sequence[Any],
        prompts: str | Sequence[str | list[str]],
        box_threshold: float = BOX_THRESHOLD,
        text_threshold: float = TEXT_THRESHOLD,
        nms_iou_threshold: float | None = None,
    ) -> list[Detections]:
        """Boxes of the prompt's classes in each image (PIL images or what preprocess made of them;
        one prompt for all, or one each): one Detections per image, sorted by box score, with
        ``data["class_scores"]`` the score of each box's own class."""


@runtime_checkable
class VideoStream(Protocol):
    """One video going through a video segmenter, frame by frame; it holds the model's memory of
    the objects it tracks (bounded: only the frames the model still looks back at are kept)."""

    def add_frame(self, image: np.ndarray) -> dict[int, np.ndarray]:
        """Take the next (H, W, 3) uint8 frame; the (H, W) bool mask of every object on it, by object id."""

    def segment_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """(N, H, W) bool masks of N pixel xyxy boxes on the current frame, from the image alone
        (no memory): what a new object prompted by that box would start with."""

    def add_objects(self, boxes: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Prompt objects (new ids, or tracked ones found again) with a pixel xyxy box each on the
        current frame; their (H, W) bool masks on it, by id."""

    def add_clicks(self, clicks: dict[int, ObjectPrompt]) -> dict[int, np.ndarray]:
        """Prompt objects (new ids, or tracked ones) with clicks, an ObjectPrompt of points and labels
        each, on the current frame; their (H, W) bool masks on it, by id."""

    def remove_objects(self, ids: Sequence[int]) -> None:
        """Forget these objects: they are no longer tracked or computed."""


@runtime_checkable
class VideoSegmenter(Protocol):
    """A segmenter with a memory across frames (SAM 2.1 video); stateless itself, one VideoStream per video."""

    name: str
    family: str
    device: torch.device
    dtype: torch.dtype

    def start(self, size: tuple[int, int]) -> VideoStream:
        """A stream for a video of (H, W) frames."""

    def parameter_count(self) -> int:
        """Number of weights."""


@dataclass(frozen=True)
class TrackedObject:
    """One object on one frame: id (the same on every frame it is tracked), label (one of the
    classes), score (the detector's score when a detection last started or matched the track; SAM 3
    video's own score of the object), box
    ((4,) float32 pixel xyxy around the mask) and mask ((H, W) bool)."""

    id: int
    label: str
    score: float
    box: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class TrackedFrame:
    """One frame's result: index (from the video's first frame), time (seconds), image ((H, W, 3)
    uint8 RGB, for drawing) and the objects on it, by id."""

    index: int
    time: float
    image: np.ndarray
    objects: tuple[TrackedObject, ...]

    @property
    def detections(self) -> Detections:
        """The objects on this frame as Detections: tracker ids, boxes, masks, scores as box scores, and
        class ids into their labels in the order they first appear."""
        classes = tuple(dict.fromkeys(item.label for item in self.objects))
        size = self.image.shape[:2]
        masks = np.stack([item.mask for item in self.objects]) if self.objects else np.zeros((0, *size), bool)
        return Detections(
            xyxy=[item.box for item in self.objects], image_size=size, masks=masks,
            box_scores=[item.score for item in self.objects],
            class_ids=[classes.index(item.label) for item in self.objects], classes=classes,
            tracker_ids=[item.id for item in self.objects],
        )

    def to_json(self) -> dict:
        """Frame index, time and per object id, label, score, box and COCO RLE mask (one JSONL line of lang-sam track)."""
        rles = encode_rles(np.stack([item.mask for item in self.objects])) if self.objects else []
        return {
            "frame": self.index,
            "time": round(self.time, 6),
            "objects": [
                {"id": item.id, "label": item.label, "score": round(item.score, 6),
                 "box": [round(float(v), 3) for v in item.box], "mask": rle}
                for item, rle in zip(self.objects, rles)
            ],
        }


@runtime_checkable
class ConceptTracker(Protocol):
    """Tracks every instance of the user's classes through a video from the text alone (SAM 3
    video's concept prompts): it detects on every frame and keeps ids itself; stateless, one
    session per call."""

    name: str
    family: str
    device: torch.device
    dtype: torch.dtype

    def track_concepts(self, frames: Iterable[tuple[int, float, np.ndarray]], classes: Sequence[str],
                       score_threshold: float = 0.5, max_lost: int = 30) -> Iterator[TrackedFrame]:
        """One TrackedFrame per (index, time, (H, W, 3) uint8 image) frame:
        the objects scoring above score_threshold, labels exactly the given class names; an object
        unreported for max_lost frames in a row ends (its id is not given again)."""

    def parameter_count(self) -> int:
        """Number of weights."""
