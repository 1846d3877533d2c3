"""Settings from flags and environment, and the pool that loads each SAM size once."""

from __future__ import annotations

import traceback

import pytest

from lang_sam import InvalidOptionError, InvalidPromptError
from lang_sam.interfaces.models import ModelPool
from lang_sam.settings import Settings
from tests.conftest import TINY_A
from tests.detector.test_grounding_dino import ASSETS


def test_flags_override_environment_override_defaults(monkeypatch):
    monkeypatch.setenv("LANG_SAM_SAM_TYPE", "vit_l")
    monkeypatch.setenv("LANG_SAM_DTYPE", "bfloat16")
    monkeypatch.delenv("LANG_SAM_DEVICE", raising=False)
    settings = Settings.from_environment(sam_type="vit_b", device=None)
    assert (settings.sam_type, settings.dtype, settings.device) == ("vit_b", "bfloat16", None)
    assert Settings.from_environment().sam_type == "vit_l"
    monkeypatch.setenv("LANG_SAM_SAM_TYPE", "vit_q")
    with pytest.raises(InvalidOptionError, match="Unknown SAM type 'vit_q'"):
        Settings.from_environment()


def test_bad_device_or_dtype_fails_before_any_model_loads():
    with pytest.raises(InvalidOptionError, match="Unknown device"):
        ModelPool(Settings(device="tpu:9"))
    with pytest.raises(InvalidOptionError, match="dtype"):
        ModelPool(Settings(device="cpu", dtype="float16"))


def test_each_size_loads_once_and_unknown_sizes_are_refused(service_models):
    checkpoints, detector = service_models
    pool = ModelPool(Settings(sam_type=TINY_A, detector=str(detector), checkpoint_dir=str(checkpoints), device="cpu"))
    assert pool.loaded_sam_types == []
    first = pool.get()
    assert pool.get(TINY_A) is first and pool.loaded_sam_types == [TINY_A]
    assert pool.describe(TINY_A).startswith(f"SAM {TINY_A} (encoder width 192)")
    with pytest.raises(InvalidOptionError, match="Unknown SAM type"):
        pool.get("vit_x")


def test_exemplar_boxes_for_a_sam_that_takes_none_are_refused_before_it_loads(service_models):
    checkpoints, detector = service_models
    pool = ModelPool(Settings(sam_type=TINY_A, detector=str(detector), checkpoint_dir=str(checkpoints), device="cpu"))
    with pytest.raises(InvalidPromptError, match=f"{TINY_A} takes no exemplar boxes; SAM 3 does"):
        pool.predict(str(ASSETS / "chelsea.jpg"), "cat", TINY_A, exemplars=[[10, 10, 50, 50]])
    assert pool.loaded_sam_types == [], "refused from the registry, without loading the SAM"


@pytest.mark.parametrize("command", [
    ["predict", "photo.jpg", "--prompt", "cat"], ["label", "photos", "--classes", "cat", "--out", "out"],
    ["eval", "--coco", "instances.json", "--images", "photos"], ["app"], ["serve"],
])
def test_every_subcommand_reads_the_same_settings_the_same_way(command, monkeypatch, tmp_path):
    from lang_sam.interfaces.cli import build_parser
    from lang_sam.interfaces.cli.common import settings as _settings

    environment = {"LANG_SAM_SAM_TYPE": "vit_b", "LANG_SAM_SAM_CHECKPOINT": "mine.pth", "LANG_SAM_DETECTOR": "folder",
                   "LANG_SAM_CHECKPOINTS": str(tmp_path), "LANG_SAM_DEVICE": "cpu", "LANG_SAM_DTYPE": "bfloat16"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    expected = Settings("vit_b", "mine.pth", "folder", str(tmp_path), "cpu", "bfloat16")
    assert _settings(build_parser().parse_args(command)) == expected
    flags = ["--sam-type", "vit_l", "--detector", "other", "--device", "cuda", "--dtype", "float32"]
    assert _settings(build_parser().parse_args([*command, *flags])) == Settings("vit_l", "mine.pth", "other", str(tmp_path), "cuda", "float32")
    monkeypatch.delenv("LANG_SAM_DETECTOR")
    assert _settings(build_parser().parse_args(command)).detector == Settings().detector, "then the default"


def test_a_failed_load_is_remembered_and_other_sams_keep_serving(service_models, tmp_path, monkeypatch):
    import shutil

    from lang_sam import CheckpointError
    from lang_sam.pipeline import models as pipeline

    checkpoints, detector = service_models
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shutil.copy(checkpoints / f"{TINY_A}.pth", folder)
    (folder / "broken.pth").write_bytes(b"not a checkpoint")
    pool = ModelPool(Settings(sam_type=TINY_A, detector=str(detector), checkpoint_dir=str(folder), device="cpu", dtype="float32"),
                     allowed=["broken"])
    assert pool.sam_types == [TINY_A, "broken"], "the SAM started with is always served"
    loads = []
    original = pipeline.load_segmenter
    monkeypatch.setattr(pipeline, "load_segmenter", lambda *args, **kwargs: loads.append(args[0]) or original(*args, **kwargs))
    for _ in range(3):
        with pytest.raises(CheckpointError, match="broken.pth.*Remembered from the first attempt"):
            pool.get("broken")
    assert loads == ["broken"], "loaded once, then the failure is reported again"
    assert pool.predict(ASSETS / "coffee.jpg", "cup", box_threshold=0.0, text_threshold=0.0, max_detections=1).num_detections == 1
    with pytest.raises(InvalidOptionError, match=f"SAM 'vit_b' is not served here; choose one of {TINY_A}, broken"):
        pool.get("vit_b")


def test_load_once_loads_each_key_once_across_threads_and_remembers_failures():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from lang_sam.errors import ModelLoadError
    from lang_sam.interfaces.models import LoadOnce

    models: LoadOnce[str, object] = LoadOnce()
    release, loads = threading.Event(), []

    def slow_load() -> object:
        loads.append("a")
        release.wait(timeout=60)
        return object()

    with ThreadPoolExecutor(max_workers=4) as pool:
        waiting = [pool.submit(models.get, "a", slow_load) for _ in range(4)]
        assert models.get("b", lambda: "b loads while a is loading") == "b loads while a is loading"
        release.set()
        values = [future.result(timeout=60) for future in waiting]
    assert loads == ["a"] and all(value is values[0] for value in values)

    attempts = []

    def failing_load() -> object:
        attempts.append(1)
        raise ModelLoadError("no weights for c")

    raised = []
    for _ in range(3):
        with pytest.raises(ModelLoadError, match=r"no weights for c \(Remembered from the first attempt") as error:
            models.get("c", failing_load)
        raised.append(error.value)
    assert attempts == [1] and models.loaded() == ["b", "a"]
    depths = [len(traceback.extract_tb(error.__traceback__)) for error in raised]
    assert len({id(error) for error in raised}) == 3 and depths[1] == depths[2], \
        "each caller gets its own copy: the stored error does not gather every caller's frames"


def test_a_semantic_model_that_fails_to_load_is_not_loaded_again_on_every_request(monkeypatch):
    import lang_sam.interfaces.models as models
    from lang_sam.errors import ModelLoadError

    attempts = []

    def missing(name, device=None, dtype=None):
        attempts.append(name)
        raise ModelLoadError(f"{name} is not here")

    monkeypatch.setattr(models, "UniversalSegmenter", missing)
    pool = ModelPool(Settings(sam_type=TINY_A, device="cpu", dtype="float32"), semantic_models=["gone"])
    for _ in range(2):
        with pytest.raises(ModelLoadError, match="gone is not here"):
            pool._namer(pool.check_semantic("gone"))
    assert attempts == ["gone"]


def test_a_model_that_does_not_track_video_is_refused_not_remembered_as_a_failed_load(service_models):
    checkpoints, detector = service_models
    pool = ModelPool(Settings(sam_type=TINY_A, detector=str(detector), checkpoint_dir=str(checkpoints), device="cpu",
                              dtype="float32"), allowed=[TINY_A, "sam2.1-hiera-tiny"])
    for _ in range(2):
        with pytest.raises(InvalidOptionError, match=f"{TINY_A} does not track video; choose one of sam2.1-hiera-tiny"):
            pool.video_segmenter(TINY_A)
