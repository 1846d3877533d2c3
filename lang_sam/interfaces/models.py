"""Models for the long-running interfaces (app, server): one Grounding DINO detector shared by the
SAMs, each loaded on first use, once."""

from __future__ import annotations

import threading
from dataclasses import replace

from lang_sam.detector import GroundingDinoDetector
from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.io.images import ImageInput
from lang_sam.io.weights import find_sam_checkpoint
from lang_sam.pipeline import LangSAM, LangSAMResult
from lang_sam.registry import DEFAULT_SAM, check_sam_type
from lang_sam.settings import Settings


class ModelPool:
    """One detector and one LangSAM per SAM size, loaded lazily and reused; safe to share between threads.

    Predictions run one at a time: each LangSAM keeps the last image's embedding, and a single
    forward pass already uses every core.
    """

    def __init__(self, settings: Settings) -> None:
        device = resolve_device(settings.device)  # bad settings fail here, before any model loads
        resolve_dtype(settings.dtype, device)
        self.settings = replace(settings, device=str(device), sam_type=settings.sam_type or DEFAULT_SAM)
        self._lock = threading.RLock()
        self._detector: GroundingDinoDetector | None = None
        self._pipelines: dict[str, LangSAM] = {}

    @property
    def loaded_sam_types(self) -> list[str]:
        return list(self._pipelines)

    def get(self, sam_type: str | None = None) -> LangSAM:
        """The pipeline of sam_type (default: the settings' size), loading it on first use."""
        sam_type = sam_type or self.settings.sam_type
        check_sam_type(sam_type, self.settings.checkpoint_dir)
        with self._lock:
            if sam_type not in self._pipelines:
                checkpoint = find_sam_checkpoint(sam_type, checkpoint_dir=self.settings.checkpoint_dir)
                if self._detector is None:
                    self._detector = GroundingDinoDetector(
                        self.settings.detector, device=self.settings.device, dtype=self.settings.dtype
                    )
                self._pipelines[sam_type] = LangSAM(
                    sam_type, checkpoint, self._detector, device=self.settings.device, dtype=self.settings.dtype
                )
            return self._pipelines[sam_type]

    def predict(
        self,
        images: ImageInput | list[ImageInput],
        prompts: str | list[str],
        sam_type: str | None = None,
        **options,
    ) -> LangSAMResult | list[LangSAMResult]:
        """LangSAM.predict on the pipeline of sam_type, one call at a time."""
        with self._lock:
            return self.get(sam_type).predict(images, prompts, **options)

    def describe(self, sam_type: str | None = None) -> str:
        """What a loaded pipeline really runs: SAM name and encoder width, detector, device, dtype."""
        return self.get(sam_type).describe()
