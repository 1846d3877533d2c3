"""Models for the long-running interfaces (app, server): one detector shared by the segmenters,
each loaded on first use, once (a text segmenter, SAM 3, uses none)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import replace
from typing import Generic, TypeVar

import numpy as np

from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.errors import InvalidOptionError, LangSAMError
from lang_sam.families.base import ConceptTracker, Detector, TrackedFrame, VideoSegmenter
from lang_sam.families.detectors import load_detector
from lang_sam.families.loading import DEFAULT_VIDEO_SEGMENTER, load_click_tracker, load_video_segmenter
from lang_sam.families.universal import UniversalSegmenter
from lang_sam.io.images import ImageInput
from lang_sam.pipeline import LangSAM
from lang_sam.registry import (
    DEFAULT_SAM, IMAGE_SEGMENTER_KINDS, TEXT_SEGMENTER, VIDEO_KINDS, check_sam_type, resolve, sam_names,
)
from lang_sam.results import LangSAMResult
from lang_sam.settings import Settings
from lang_sam.video.clicks import CLICKED_LABEL, follow_clicks
from lang_sam.video.frames import VideoFrames
from lang_sam.video.tracker import open_and_track
from lang_sam.vocabulary import Detections, Exemplars, ImageEmbedding, ObjectPrompt


def served_detectors(settings: Settings, requested: Sequence[str] | None) -> tuple[str, ...]:
    """The detectors a server or app offers: the settings' own first, then the requested ones
    (registry names, repo ids or folders; each loads on first use), without repeats."""
    return tuple(dict.fromkeys([settings.detector, *(requested or [])]))


def served_semantic_models(requested: Sequence[str] | None) -> list[str]:
    """The universal models a server or app names everything-masks with: the requested ones
    (registry names, repo ids or folders; each loads on first use), without repeats; none by default."""
    return list(dict.fromkeys(requested or ()))


def served_sam_types(settings: Settings, requested: Sequence[str] | None) -> tuple[str, ...]:
    """The SAMs a server offers: the settings' own first (vit_h when they name none), then the
    requested names, each checked against the registry, without repeats."""
    names = [settings.sam_type or DEFAULT_SAM, *(requested or [])]
    return tuple(dict.fromkeys(check_sam_type(name, settings.checkpoint_dir) for name in names))


Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class LoadOnce(Generic[Key, Value]):
    """Values made once per key, safe to share between threads: each key loads under its own lock,
    so other keys load and are read meanwhile; a load that fails with a LangSAMError is remembered
    and raised again for that key instead of being tried on every request (restart after fixing it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the dictionaries, never a load
        self._loading: dict[Key, threading.Lock] = {}
        self._values: dict[Key, Value] = {}
        self._failures: dict[Key, LangSAMError] = {}

    def get(self, key: Key, load: Callable[[], Value]) -> Value:
        """The value of key, made by load() the first time it is asked for."""
        with self._lock:
            if key in self._values:
                return self._values[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._values:
                    return self._values[key]
                if key in self._failures:  # a fresh copy: raising the stored one would chain every caller's frames to it
                    raise copy.copy(self._failures[key]) from None
            try:
                value = load()
            except LangSAMError as error:
                remembered = copy.copy(error)
                if not getattr(error, "remembered", False):  # not already remembered by an inner LoadOnce
                    remembered.args = (f"{error} (Remembered from the first attempt: restart after fixing it.)",)
                remembered.remembered = True
                with self._lock:
                    self._failures[key] = remembered
                raise copy.copy(remembered) from None
            with self._lock:
                self._values[key] = value
            return value

    def loaded(self) -> list[Key]:
        """The keys loaded so far, in the order they loaded."""
        with self._lock:
            return list(self._values)


class ModelPool:
    """One detector and one LangSAM per SAM, loaded on first use and reused; safe to share between threads.

    allowed: the SAM names that may be loaded (None: any name the registry knows); detectors: the
    detectors requests may name besides the settings' own (each pairs with any SAM, sharing its
    loaded segmenter); semantic_models: the universal segmentation models (registry names, repo ids
    or folders) that may name everything-masks, none by default. Every model (SAM, detector, video
    model, semantic model) loads through a LoadOnce: under its own lock, so predictions on models
    already loaded go on meanwhile, and a load that fails is remembered and reported again, not
    retried on every request (restart after fixing it).
    Predictions run one at a time: a single forward pass already uses every core.
    """

    def __init__(self, settings: Settings, allowed: Sequence[str] | None = None, detectors: Sequence[str] | None = None,
                 semantic_models: Sequence[str] | None = None) -> None:
        device = resolve_device(settings.device)  # bad settings fail here, before any model loads
        resolve_dtype(settings.dtype, device)
        self.settings = replace(settings, device=str(device), sam_type=settings.sam_type or DEFAULT_SAM)
        self.allowed = served_sam_types(self.settings, allowed) if allowed else None
        self.detector_names = served_detectors(self.settings, detectors)
        self.semantic_models = served_semantic_models(semantic_models)
        self._predicting = threading.Lock()
        self._pipelines: LoadOnce[str, LangSAM] = LoadOnce()
        self._paired: LoadOnce[tuple[str, str], LangSAM] = LoadOnce()  # (SAM, another detector): sharing the segmenter
        self._detectors: LoadOnce[str, Detector] = LoadOnce()
        self._namers: LoadOnce[str, UniversalSegmenter] = LoadOnce()
        self._video: LoadOnce[str, VideoSegmenter | ConceptTracker] = LoadOnce()
        self._click_trackers: LoadOnce[str, VideoSegmenter] = LoadOnce()  # SAM 3: its tracker alone, not _video's

    @property
    def loaded_sam_types(self) -> list[str]:
        return self._pipelines.loaded()

    @property
    def sam_types(self) -> list[str]:
        """The names this pool may load, in the order to offer them."""
        return list(self.allowed) if self.allowed else sam_names(self.settings.checkpoint_dir)

    def check(self, sam_type: object) -> str:
        """sam_type when this pool may load it, else the InvalidOptionError that names those it may."""
        name = check_sam_type(sam_type, self.settings.checkpoint_dir)
        if self.allowed and name not in self.allowed:
            raise InvalidOptionError(
                f"SAM {name!r} is not served here; choose one of {', '.join(self.allowed)} (lang-sam serve --sam-types)."
            )
        return name

    def check_detector(self, detector: object) -> str:
        """detector (None or "": the settings' own) when this pool offers it, else the
        InvalidOptionError that names those it does."""
        name = detector or self.settings.detector
        if name not in self.detector_names:
            raise InvalidOptionError(
                f"Detector {name!r} is not served here; choose one of {', '.join(self.detector_names)} (lang-sam serve --detectors)."
            )
        return name

    def check_semantic(self, name: object) -> str:
        """name when this pool may name masks with it, else the InvalidOptionError that says which it may."""
        if name not in self.semantic_models:
            offered = (f"choose one of {', '.join(self.semantic_models)}" if self.semantic_models
                       else "none is served (lang-sam serve --semantic-models NAME to offer one)")
            raise InvalidOptionError(f"Semantic model {name!r} is not served here; {offered}.")
        return str(name)

    def get(self, sam_type: str | None = None, detector: str | None = None) -> LangSAM:
        """The pipeline of sam_type (default: the settings' SAM) with detector (default: the
        settings'), loading either on first use; a text segmenter (SAM 3) ignores the detector."""
        pipeline = self._pipeline(sam_type)
        detector_name = self.check_detector(detector)
        if detector_name == self.settings.detector or pipeline.segments_text:
            return pipeline
        return self._paired.get((pipeline.sam_type, detector_name),
                                lambda: LangSAM.from_parts(pipeline.segmenter, self._detector(detector_name)))

    def _pipeline(self, sam_type: str | None) -> LangSAM:
        name = self.check(sam_type or self.settings.sam_type)

        def load() -> LangSAM:
            text = self._segments_text(name)
            detector = self.settings.detector if text else self._detector(self.settings.detector)  # SAM 3 loads none
            return LangSAM(name, detector=detector, device=self.settings.device, dtype=self.settings.dtype,
                           checkpoint_dir=self.settings.checkpoint_dir)

        return self._pipelines.get(name, load)

    def _segments_text(self, name: str) -> bool:
        """Whether the SAM called name is a text segmenter (SAM 3: text and exemplar boxes, no detector), from the registry."""
        return resolve(name, IMAGE_SEGMENTER_KINDS, self.settings.checkpoint_dir).kind == TEXT_SEGMENTER

    def _namer(self, name: str) -> UniversalSegmenter:
        """The universal segmentation model called name, loaded once."""
        return self._namers.get(name, lambda: UniversalSegmenter(name, device=self.settings.device, dtype=self.settings.dtype))

    def _detector(self, name: str) -> Detector:
        """The detector called name, loaded once and shared by every SAM."""
        return self._detectors.get(name, lambda: load_detector(name, device=self.settings.device, dtype=self.settings.dtype))

    def predict(
        self,
        images: ImageInput | list[ImageInput],
        prompts: str | list[str],
        sam_type: str | None = None,
        detector: str | None = None,
        **options,
    ) -> LangSAMResult | list[LangSAMResult]:
        """LangSAM.predict on the pipeline of sam_type and detector, one call at a time (a load is not one).
        Exemplar boxes for a SAM that takes none are refused before it loads (vit_h is 2.4 GB)."""
        name = self.check(sam_type or self.settings.sam_type)
        if not self._segments_text(name) and Exemplars.of(options.get("exemplars"), options.get("negative_exemplars")):
            raise Exemplars.refused_by(name)
        pipeline = self.get(name, detector)
        with self._predicting:
            return pipeline.predict(images, prompts, **options)

    def tiles(self, reader, prompt: str, sam_type: str | None = None, detector: str | None = None, **options) -> Detections:
        """lang_sam.tiling.segment_tiles (reader: a TileReader; options: its tile, overlap, progress
        and LangSAM.predict's) on the pipeline of sam_type and detector, one call at a time, like predict.
        Its objects are gathered in memory (not streamed as the CLI's are): the upload limit bounds them."""
        from lang_sam.tiling import segment_tiles

        pipeline = self.get(sam_type, detector)
        with self._predicting:
            return segment_tiles(pipeline, reader, prompt, **options)

    def everything(self, image, sam_type: str | None = None, progress=None, semantic: str | None = None,
                   **generator_options) -> Detections:
        """segment_everything with SamAutomaticMaskGenerator(**generator_options) on the segmenter of
        sam_type (SAM v1, SAM 2.1, SAM-HQ; SAM 3 is refused): Detections, named by the served semantic
        model when given; one call at a time, like predict. progress: generate's callback."""
        from lang_sam.everything import segment_everything
        from lang_sam.segmenter import SamAutomaticMaskGenerator

        namer = None if semantic is None else self._namer(self.check_semantic(semantic))
        generator = SamAutomaticMaskGenerator(self.get(sam_type).segmenter, **generator_options)
        with self._predicting:
            return segment_everything(image, generator, namer, progress)

    def video_segmenter(self, sam_type: str | None = None) -> VideoSegmenter | ConceptTracker:
        """The video model of sam_type (SAM 2.1, EdgeTAM or SAM 3; default: the first such entry this pool
        offers, else sam2.1-hiera-tiny), loaded once."""
        name = self.check_video_type(sam_type)
        return self._video.get(name, lambda: load_video_segmenter(name, None, self.settings.device, self.settings.dtype,
                                                                  self.settings.checkpoint_dir))

    def check_video_type(self, sam_type: str | None = None) -> str:
        """The served name of sam_type (default: the first video model this pool offers, else
        sam2.1-hiera-tiny), refused unless it tracks video; no model loads."""
        name = self.check(sam_type or self._default_video_type())
        if name not in self.video_types:  # the user's choice, not a failed load: never remembered
            raise InvalidOptionError(f"{name} does not track video; choose one of {', '.join(self.video_types) or DEFAULT_VIDEO_SEGMENTER}.")
        return name

    @property
    def video_types(self) -> list[str]:
        """The names this pool offers that track through video (SAM 2.1, EdgeTAM, SAM 3), in order."""
        return [name for name in self.sam_types
                if set(resolve(name, IMAGE_SEGMENTER_KINDS, self.settings.checkpoint_dir).kinds) & set(VIDEO_KINDS)]

    def _default_video_type(self) -> str:
        return next(iter(self.video_types), DEFAULT_VIDEO_SEGMENTER)

    def track(self, video, prompt: str, sam_type: str | None = None, detector: str | None = None,
              **options) -> Iterator[TrackedFrame]:
        """LangSAM.track's frames with the video model of sam_type and the served detector; each
        frame is computed holding the prediction lock, so tracking a long video shares the models
        with the requests that come meanwhile. options: those of lang_sam.video.tracker.open_and_track."""
        segmenter = self.video_segmenter(sam_type)
        detector_name = self.check_detector(detector)  # loaded only when the video model needs one (not SAM 3)
        return self._one_frame_at_a_time(open_and_track(video, prompt, lambda: self._detector(detector_name), segmenter,
                                                        self.settings.device, self.settings.dtype, **options))

    def follow_clicks(self, video: VideoFrames, clicks: dict[int, ObjectPrompt], sam_type: str | None = None,
                      label: str | dict[int, str] = CLICKED_LABEL) -> Iterator[TrackedFrame]:
        """lang_sam.video.clicks.follow_clicks's frames with the click tracker of sam_type (SAM 3's
        tracker, SAM 2.1 or EdgeTAM video; the default as track's), loaded once; one frame at a
        time under the prediction lock, as track."""
        name = self.check_video_type(sam_type)
        tracker = self._click_trackers.get(name, lambda: load_click_tracker(name, self.settings.device, self.settings.dtype,
                                                                            self.settings.checkpoint_dir))
        return self._one_frame_at_a_time(follow_clicks(video, clicks, tracker, label=label))

    def _one_frame_at_a_time(self, frames: Iterator[TrackedFrame]) -> Iterator[TrackedFrame]:
        """frames, each computed holding the prediction lock."""
        results = iter(frames)
        while True:
            with self._predicting:
                frame = next(results, None)
            if frame is None:
                return
            yield frame

    def embed(self, image: np.ndarray, sam_type: str | None = None) -> ImageEmbedding:
        """LangSAM.embed on the SAM of sam_type, one call at a time, like predict."""
        pipeline = self.get(sam_type)
        with self._predicting:
            return pipeline.embed(image)

    def decode(self, embedding: ImageEmbedding, sam_type: str | None = None, **prompts) -> LangSAMResult:
        """LangSAM.decode (clicks and boxes against an embedding of this SAM), one call at a time."""
        pipeline = self.get(sam_type)
        with self._predicting:
            return pipeline.decode(embedding, **prompts)

    def describe(self, sam_type: str | None = None, detector: str | None = None, semantic: str | None = None) -> str:
        """What a loaded pipeline really runs: segmenter name and size, detector, device, dtype, and
        the model that named the masks."""
        return self.get(sam_type, detector).describe() + (f"; names from {semantic}" if semantic else "")
