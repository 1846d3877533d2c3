"""What a LangSAM holds, apart from what it does: its device and dtype, its segmenter with the
embeddings of recent images (swapped whole by set_sam, so a call finishes on the model it started
on), and its detector, loaded on first use."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image

from lang_sam.detector import DEFAULT_DETECTOR, GroundingDinoDetector
from lang_sam.errors import InvalidOptionError, InvalidPromptError
from lang_sam.families.base import Detector, Segmenter, TextSegmenter
from lang_sam.families.detectors import load_detector
from lang_sam.families.loading import load_segmenter
from lang_sam.io.images import ImageInput, load_image
from lang_sam.pipeline.cache import EmbeddingCache, LoadedSam
from lang_sam.pipeline.prepared import PreparedImage, prepare_for_segmenter
from lang_sam.segmenter.adapter import SamV1Segmenter
from lang_sam.segmenter.sam import Sam


class LazyDetector:
    """A pipeline's detector: a loaded one, or a source loaded on first use, once, whatever the
    number of threads asking (a pipeline on SAM 3 alone never loads one).

    source: what load_detector takes (a registry name, repo id, folder or IDEA .pth); processor: a
    Grounding DINO processor folder of its own (lang-segment-anything v0.2.x), or None."""

    def __init__(self, source: str | Path | Detector, processor: str | Path | None, device: torch.device, dtype: torch.dtype) -> None:
        self._source, self._processor, self._device, self._dtype = source, processor, device, dtype
        self._loaded: Detector | None = None if isinstance(source, (str, Path)) else source
        self._lock = threading.Lock()

    def get(self) -> Detector:
        with self._lock:
            if self._loaded is None:
                self._loaded = (load_detector(self._source, self._device, self._dtype) if self._processor is None else
                                GroundingDinoDetector(self._source, device=self._device, dtype=self._dtype, processor=self._processor))
            return self._loaded


Models = TypeVar("Models", bound="PipelineModels")


class PipelineModels:
    """The models of a pipeline and what is asked of them alone (LangSAM runs them).

    device, dtype: where and how both run; checkpoint_dir: where SAM names are looked up;
    embedding_cache_size: how many images' embeddings the segmenter keeps.
    """

    device: torch.device
    dtype: torch.dtype
    checkpoint_dir: str | Path | None
    embedding_cache_size: int
    _detector: LazyDetector
    _sam: LoadedSam

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
        return self._detector.get()

    @classmethod
    def from_parts(
        cls: type[Models], sam: Sam | Segmenter | TextSegmenter, detector: Detector | None, sam_type: str = "custom",
        embedding_cache_size: int = 4,
    ) -> Models:
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
        pipeline._detector = LazyDetector(detector if detector is not None else DEFAULT_DETECTOR, None, pipeline.device, pipeline.dtype)
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
        if not getattr(model, "exports_onnx", False):  # SAM v1's capability alone
            raise InvalidOptionError(
                f"{model.name} is not a SAM v1 model; ONNX export and SamPredictor run "
                "SAM v1: choose vit_h, vit_l, vit_b or a SAM v1 checkpoint of your own."
            )
        return model.sam

    def describe(self) -> str:
        """What runs: segmenter name and size, detector, device and dtype (as the app, the server
        and ``lang-sam predict -v`` show it)."""
        model = self._sam.model
        size = model.size_text() if hasattr(model, "size_text") else f"{model.parameter_count() / 1e6:.1f}M parameters"
        runs = f"{model.name} ({size})" if self._sam.segments_text else f"SAM {model.name} ({size}) + {self.detector.name}"
        return f"{runs} on {self.device}, {str(self.dtype).removeprefix('torch.')}"

    @property
    def embeddings(self) -> EmbeddingCache:
        """The current segmenter's embedding cache."""
        return self._sam.embeddings

    def prepare(self, image: ImageInput) -> PreparedImage:
        """Decode the image and resize it for the segmenter and for the detector; safe to call from
        other threads while predict runs (nothing here touches a model)."""
        return self._prepare(self._sam, image)

    def _prepare(self, loaded: LoadedSam, image: ImageInput) -> PreparedImage:
        """prepare for the segmenter a call started with (set_sam may swap it meanwhile)."""
        array = load_image(image)
        prepared = prepare_for_segmenter(loaded.model, array)
        if loaded.segments_text:
            return prepared
        return PreparedImage(prepared.original_size, prepared.segmenter_input, prepared.family,
                             self.detector.preprocess(Image.fromarray(array)), prepared.key)

    def _promptable(self, what: str) -> LoadedSam:
        """The loaded segmenter, when it takes clicks and boxes (SAM 3 with its tracker does; a
        folder of Sam3Model alone does not)."""
        loaded = self._sam
        if not loaded.model.takes_clicks_and_boxes:
            raise InvalidPromptError(
                f"{loaded.model.name} segments text prompts ({loaded.model.why_not['takes_clicks_and_boxes']}); {what} "
                "needs a promptable segmenter (vit_h, vit_l, vit_b, sam2.1-hiera-*, sam-hq-vit-*, sam3)."
            )
        return loaded

    def _embedding(self, loaded: LoadedSam, image: PreparedImage) -> Any:
        if image.family != loaded.model.family:
            raise InvalidOptionError(
                f"This image was prepared for a {image.family} model, but {loaded.model.name} is {loaded.model.family}; "
                "prepare it again with this pipeline (LangSAM.prepare)."
            )
        return loaded.embeddings.get_or_encode(image.key, lambda: loaded.model.embed(image.segmenter_input))

