"""The robustness matrix through the public API and the CLI (the server's rows are in test_server).

Each bad input gets a valid result or the project's own error with a message that says what to do;
nothing a user wrote is lost or half-written.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lang_sam import (
    CheckpointError,
    InvalidImageError,
    InvalidOptionError,
    InvalidPromptError,
    LangSAM,
)
from lang_sam.detector import GroundingDinoDetector
from lang_sam.devices import resolve_dtype
from lang_sam.segmenter.build import build_sam_from_architecture
from tests.conftest import SMALL_ARCHITECTURE, TINY_A, TINY_B, random_sam_state_dict
from tests.robustness_cases import write_image_cases
from tests.detector.test_grounding_dino import ASSETS

LOOSE = dict(box_threshold=0.0, text_threshold=0.0, max_detections=2)


@pytest.fixture(scope="module")
def pipeline(tiny_detector_dir):
    """LangSAM on a small random SAM: the matrix exercises input handling, not model size."""
    sam = build_sam_from_architecture(SMALL_ARCHITECTURE)
    sam.load_state_dict(random_sam_state_dict(SMALL_ARCHITECTURE, seed=5))
    return LangSAM.from_parts(sam, GroundingDinoDetector(tiny_detector_dir, device="cpu", dtype="float32"), sam_type="small")


@pytest.fixture(scope="module")
def image_cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd-images")
    return folder, write_image_cases(folder)


def test_every_image_file_gives_a_result_of_its_size_or_an_invalid_image_error(pipeline, image_cases):
    folder, cases = image_cases
    for name, expected in cases.items():
        if expected is None:
            said = "declares more pixels than is safe" if name == "bomb.png" else "Could not read image"
            with pytest.raises(InvalidImageError, match=said) as error:
                pipeline.predict(folder / name, "cat", **LOOSE)
            assert str(folder / name) in str(error.value), name
            continue
        result = pipeline.predict(folder / name, "cat", **LOOSE)
        assert result.masks.shape == (result.num_detections, *expected) and result.masks.dtype == bool, name
        assert result.num_detections == 2 and set(result.phrases) == {"cat"}, name


def test_directories_missing_files_and_odd_arrays(pipeline, tmp_path):
    (tmp_path / "folder.jpg").mkdir()
    for source, message in [
        (tmp_path / "folder.jpg", "not a file"),
        (tmp_path / "missing.png", "does not exist"),
        (np.zeros((10, 10, 2), np.uint8), "must be"),
        (np.zeros((10, 10, 3), np.int32), "dtype"),
        (np.full((10, 10, 3), 2.0), r"\[0, 1\]"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        ("", "does not exist"),
        (12, "Expected an image"),
    ]:
        with pytest.raises(InvalidImageError, match=message):
            pipeline.predict(source, "cat", **LOOSE)
    float_image = np.random.default_rng(0).random((30, 40, 3))
    assert pipeline.predict(float_image, "cat", **LOOSE).masks.shape == (2, 30, 40)


@pytest.mark.parametrize(
    ("prompt", "classes"),
    [
        ("", None),
        ("   \t\n", None),
        (",.;:!?", None),
        ("🐱🚗", None),
        ("\x00\x07\x1b", None),
        ("x" * 2000, ["x" * 2000]),  # one long word: a single unknown token to BERT
        ("word " * 300, None),  # one class of 300 words: more tokens than the text encoder takes
        ("cat, cat, CAT,  Cat ", ["cat"]),
        ("chat, 猫, Straße", ["chat", "猫", "straße"]),
        ("cat\x00dog, sofa\x1b", ["cat dog", "sofa"]),
        ("🐱 cat, 🚗 car", ["🐱 cat", "🚗 car"]),
    ],
)
def test_prompts(pipeline, prompt, classes):
    image = ASSETS / "coffee.jpg"
    if classes is None:
        with pytest.raises(InvalidPromptError, match="names no class|longer than"):
            pipeline.predict(image, prompt, **LOOSE)
        return
    result = pipeline.predict(image, prompt, **LOOSE)
    assert result.classes == classes and set(result.phrases) <= set(classes) and result.num_detections == 2


def test_a_thousand_classes(pipeline):
    classes = [f"thing {index}" for index in range(1000)]
    result = pipeline.predict(ASSETS / "coffee.jpg", ", ".join(classes), box_threshold=0.0, text_threshold=0.0, max_detections=10)
    assert result.classes == classes and result.num_detections == 10 and set(result.phrases) <= set(classes)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"box_threshold": -0.1}, "box_threshold"),
        ({"box_threshold": 1.5}, "box_threshold"),
        ({"text_threshold": float("nan")}, "text_threshold"),
        ({"box_threshold": "0.3"}, "box_threshold"),
        ({"text_threshold": None}, "text_threshold"),
        ({"max_detections": -1}, "max_detections"),
        ({"max_detections": 2.5}, "max_detections"),
    ],
)
def test_bad_thresholds_and_options(pipeline, options, message):
    with pytest.raises(InvalidOptionError, match=message):
        pipeline.predict(ASSETS / "coffee.jpg", "cup", **options)


def test_unknown_sam_size_device_and_dtype(service_models, monkeypatch):
    checkpoints, detector = service_models
    with pytest.raises(InvalidOptionError, match="Unknown SAM type 'vit_x'"):
        LangSAM("vit_x", detector=detector)
    with pytest.raises(InvalidOptionError, match="Unknown device 'gpu7'"):
        LangSAM(sam_checkpoint=checkpoints / f"{TINY_A}.pth", detector=detector, device="gpu7")
    with pytest.raises(InvalidOptionError, match="CUDA is not available"):
        LangSAM(sam_checkpoint=checkpoints / f"{TINY_A}.pth", detector=detector, device="cuda")
    with pytest.raises(InvalidOptionError, match="Unsupported dtype"):
        LangSAM(sam_checkpoint=checkpoints / f"{TINY_A}.pth", detector=detector, device="cpu", dtype="float16")
    # A GPU without bfloat16 (pre-Ampere): the check itself, with CUDA's answers as such a GPU gives them.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    with pytest.raises(InvalidOptionError, match="does not support bfloat16"):
        resolve_dtype("bfloat16", torch.device("cuda"))


class RunsCode:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("kind", ["missing", "truncated", "wrong size", "runs code", "directory"])
def test_bad_weights_through_the_api_and_the_cli(kind, service_models, tmp_path):
    checkpoints, detector = service_models
    path = tmp_path / "sam_vit_b_01ec64.pth"
    if kind == "truncated":
        path.write_bytes((checkpoints / f"{TINY_A}.pth").read_bytes()[:100_000])
    elif kind == "wrong size":
        path = checkpoints / f"{TINY_B}.pth"  # a SAM of its own architecture, given for vit_b
    elif kind == "runs code":
        torch.save({"image_encoder.patch_embed.proj.weight": RunsCode(str(tmp_path / "code-ran"))}, path)
    elif kind == "directory":
        path.mkdir()
    message = {"missing": "does not exist", "truncated": "truncated|damaged|not a", "wrong size": r"holds a SAM of its own architecture \(encoder width 256",
               "runs code": "Refused to load", "directory": "not a file"}[kind]
    with pytest.raises(CheckpointError, match=message):
        LangSAM("vit_b", path, detector, device="cpu", dtype="float32")
    completed = subprocess.run(
        [sys.executable, "-m", "lang_sam.interfaces.cli", "predict", str(ASSETS / "coffee.jpg"), "--prompt", "cup",
         "--sam-type", "vit_b", "--sam-checkpoint", str(path), "--detector", str(detector), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "lang-sam:" in completed.stderr and not (tmp_path / "out").exists()
    assert not (tmp_path / "code-ran").exists(), "unpickling ran code"


def test_read_only_cache_and_offline_with_nothing_cached(tiny_detector_dir, monkeypatch):
    # /proc refuses new folders even to root, as a read-only mount does.
    monkeypatch.setenv("TORCH_HOME", "/proc/lang-sam-cache")
    monkeypatch.delenv("LANG_SAM_CHECKPOINTS", raising=False)
    with pytest.raises(CheckpointError, match="Cannot write into .*LANG_SAM_CHECKPOINTS"):
        LangSAM("vit_b", detector=tiny_detector_dir, device="cpu", dtype="float32")


def test_cli_over_a_folder_of_odd_images_writes_the_good_and_reports_the_bad(image_cases, service_models, tmp_path):
    folder, cases = image_cases
    checkpoints, detector = service_models
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "lang_sam.interfaces.cli", "predict", str(folder), "--prompt", "cat", "--out", str(out),
         "--sam-checkpoint", str(checkpoints / f"{TINY_A}.pth"),
         "--detector", str(detector), "--device", "cpu", "--max-detections", "2",
         "--box-threshold", "0", "--text-threshold", "0"],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 1 and "Traceback" not in completed.stderr
    good = {name: size for name, size in cases.items() if size is not None}
    bad = [name for name, size in cases.items() if size is None]
    assert f"{len(good)} of {len(cases)} images written" in completed.stderr
    for name in bad:
        assert f"skipped {folder / name}" in completed.stderr
    for name, (height, width) in good.items():
        stem = name.rsplit(".", 1)[0]
        exported = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
        assert exported["file"] == name and exported["image"] == {"height": height, "width": width}
        assert Image.open(out / f"{stem}.png").size == (width, height)
    assert not list(out.glob(".*")), "no temporary file is left"


def test_a_detector_whose_weights_would_run_code_is_refused_with_what_to_do(tiny_detector_dir, sam_files, tmp_path):
    import os
    import shutil

    folder = tmp_path / "detector"
    shutil.copytree(tiny_detector_dir, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"weights": RunsCode(str(tmp_path / "code-ran"))}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="could run code.*safetensors"):
        GroundingDinoDetector(folder, device="cpu", dtype="float32")
    completed = subprocess.run(
        [sys.executable, "-m", "lang_sam.interfaces.cli", "predict", str(ASSETS / "coffee.jpg"), "--prompt", "cup",
         "--sam-checkpoint", str(sam_files[0]), "--detector", str(folder), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode == 2 and "Traceback" not in completed.stderr and "safetensors" in completed.stderr
    assert not (tmp_path / "code-ran").exists(), "unpickling ran code"


def test_auto_dtype_is_bfloat16_only_where_it_is_native(monkeypatch, measured_auto_dtype):
    import warnings

    from lang_sam import devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_bf16_instructions", lambda: ("amx_bf16",))
    monkeypatch.setattr(devices, "cpu_bf16_speedup", lambda: 6.0)  # as measured with AMX
    assert resolve_dtype("auto", cpu) == resolve_dtype(None, cpu) == torch.bfloat16
    monkeypatch.setattr(devices, "cpu_bf16_speedup", lambda: 0.5)  # native, but slower than fp32 (measured here)
    assert resolve_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr(devices, "cpu_bf16_instructions", lambda: ())
    assert resolve_dtype("auto", cpu) == torch.float32
    devices._warn_emulated_bf16.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
        resolve_dtype("bf16", cpu)
    emulated = [w for w in caught if "emulated" in str(w.message)]
    assert len(emulated) == 1 and "dtype='auto'" in str(emulated[0].message), "warned once, naming auto"
    assert devices.bf16_skip_reason() is not None and "NOT native" in devices.describe_cpu()

