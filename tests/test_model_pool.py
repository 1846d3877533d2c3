"""Settings from flags and environment, and the pool that loads each SAM size once."""

from __future__ import annotations

import pytest

from lang_sam import InvalidOptionError
from lang_sam.interfaces.models import ModelPool, ModelSettings
from tests.conftest import TINY_A


def test_flags_override_environment_override_defaults(monkeypatch):
    monkeypatch.setenv("LANG_SAM_SAM_TYPE", "vit_l")
    monkeypatch.setenv("LANG_SAM_DTYPE", "bfloat16")
    monkeypatch.delenv("LANG_SAM_DEVICE", raising=False)
    settings = ModelSettings.from_environment(sam_type="vit_b", device=None)
    assert (settings.sam_type, settings.dtype, settings.device) == ("vit_b", "bfloat16", None)
    assert ModelSettings.from_environment().sam_type == "vit_l"
    monkeypatch.setenv("LANG_SAM_SAM_TYPE", "vit_q")
    with pytest.raises(InvalidOptionError, match="Unknown SAM type 'vit_q'"):
        ModelSettings.from_environment()


def test_bad_device_or_dtype_fails_before_any_model_loads():
    with pytest.raises(InvalidOptionError, match="Unknown device"):
        ModelPool(ModelSettings(device="tpu:9"))
    with pytest.raises(InvalidOptionError, match="dtype"):
        ModelPool(ModelSettings(device="cpu", dtype="float16"))


def test_each_size_loads_once_and_unknown_sizes_are_refused(service_models):
    checkpoints, detector = service_models
    pool = ModelPool(ModelSettings(sam_type=TINY_A, detector=str(detector), checkpoint_dir=str(checkpoints), device="cpu"))
    assert pool.loaded_sam_types == []
    first = pool.get()
    assert pool.get(TINY_A) is first and pool.loaded_sam_types == [TINY_A]
    assert pool.describe(TINY_A).startswith(f"SAM {TINY_A} (encoder width 192)")
    with pytest.raises(InvalidOptionError, match="Unknown SAM type"):
        pool.get("vit_x")
