"""Models for the long-running interfaces (app, server): settings from flags and environment, and
one Grounding DINO detector shared by SAM sizes that are loaded on first use, once each."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, fields, replace

from lang_sam.detector import DEFAULT_DETECTOR, GroundingDinoDetector
from lang_sam.devices import resolve_device, resolve_dtype
from lang_sam.io.images import ImageInput
from lang_sam.io.weights import find_sam_checkpoint
from lang_sam.pipeline import LangSAM, LangSAMResult
from lang_sam.registry import CHECKPOINT_DIR_VARIABLE, DEFAULT_SAM, check_sam_type

# Each setting can come from this environment variable; a flag given on the command line wins.
ENVIRONMENT_VARIABLES = {
    "sam_type": "LANG_SAM_SAM_TYPE",
    "detector": "LANG_SAM_DETECTOR",
    "checkpoint_dir": CHECKPOINT_DIR_VARIABLE,
    "device": "LANG_SAM_DEVICE",
    "dtype": "LANG_SAM_DTYPE",
}


@dataclass(frozen=True)
class ModelSettings:
    """Which models to serve. sam_type is the size used when a request names none."""

    sam_type: str = DEFAULT_SAM
    detector: str = DEFAULT_DETECTOR
    checkpoint_dir: str | None = None
    device: str | None = None
    dtype: str | None = None

    @classmethod
    def from_environment(cls, **flags: str | None) -> ModelSettings:
        """Defaults, overridden by the environment variables, overridden by flags that are not None."""
        values = {}
        for setting in fields(cls):
            value = flags.get(setting.name)
            if value is None:
                value = os.environ.get(ENVIRONMENT_VARIABLES[setting.name]) or None
            if value is not None:
                values[setting.name] = str(value)
        settings = cls(**values)
        check_sam_type(settings.sam_type, settings.checkpoint_dir)
        return settings


class ModelPool:
    """One detector and one LangSAM per SAM size, loaded lazily and reused; safe to share between threads.

    Predictions run one at a time: each LangSAM keeps the last image's embedding, and a single
    forward pass already uses every core.
    """

    def __init__(self, settings: ModelSettings) -> None:
        device = resolve_device(settings.device)  # bad settings fail here, before any model loads
        resolve_dtype(settings.dtype, device)
        self.settings = replace(settings, device=str(device))
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
        """What a loaded pipeline really runs: SAM size and encoder width, detector, device, dtype."""
        pipeline = self.get(sam_type)
        width = pipeline.sam.image_encoder.patch_embed.proj.out_channels
        return (
            f"SAM {pipeline.sam_type} (encoder width {width}) + {pipeline.detector.name} on "
            f"{pipeline.device}, {str(pipeline.dtype).removeprefix('torch.')}"
        )

