"""One Settings type for every entry point: each `lang-sam` subcommand, the app and the server read
the models to run the same way, flag first, then a LANG_SAM_* environment variable, then the default."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from lang_sam.registry import CHECKPOINT_DIR_VARIABLE, DEFAULT_DETECTOR, check_sam_type

# The environment variable of each setting; a flag given on the command line wins over it.
ENVIRONMENT_VARIABLES = {
    "sam_type": "LANG_SAM_SAM_TYPE",
    "sam_checkpoint": "LANG_SAM_SAM_CHECKPOINT",
    "detector": "LANG_SAM_DETECTOR",
    "checkpoint_dir": CHECKPOINT_DIR_VARIABLE,
    "device": "LANG_SAM_DEVICE",
    "dtype": "LANG_SAM_DTYPE",
    "tile": "LANG_SAM_TILE",
    "tile_overlap": "LANG_SAM_TILE_OVERLAP",
}


@dataclass(frozen=True)
class Settings:
    """Which models to run, where, in which precision.

    sam_type: a name from lang_sam.registry (None: vit_h, or what sam_checkpoint holds);
    sam_checkpoint: a SAM .pth or .safetensors file, a transformers folder (SAM, SAM 2.1, SAM-HQ,
    SAM 3) or a Hugging Face repo id; detector: a detector name, a Grounding DINO /
    MM-Grounding-DINO / OWLv2 id or folder, or an IDEA .pth; checkpoint_dir:
    the folder of SAM files; device: cpu, cuda, cuda:N, mps or None (best available); dtype: auto
    (None), float32 or bfloat16; tile, tile_overlap: pixels, given when predict and everything run
    tiled over rasters of any size (lang_sam.tiling), else None.
    """

    sam_type: str | None = None
    sam_checkpoint: str | None = None
    detector: str = DEFAULT_DETECTOR
    checkpoint_dir: str | None = None
    device: str | None = None
    dtype: str | None = None
    tile: str | None = None
    tile_overlap: str | None = None

    @classmethod
    def from_environment(cls, **flags: object) -> Settings:
        """Defaults, overridden by the environment variables, overridden by flags that are not None."""
        values = {}
        for setting in fields(cls):
            value = flags.get(setting.name)
            if value is None:
                value = os.environ.get(ENVIRONMENT_VARIABLES[setting.name]) or None
            if value is not None:
                values[setting.name] = str(value)
        settings = cls(**values)
        if settings.sam_type is not None and settings.sam_checkpoint is None:
            check_sam_type(settings.sam_type, settings.checkpoint_dir)
        return settings
