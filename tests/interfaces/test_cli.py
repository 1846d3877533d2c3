"""lang-sam predict: outputs per image, unreadable images skipped, clear errors, no partial files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from lang_sam.interfaces.cli import main
from tests.detector.test_grounding_dino import ASSETS


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(ASSETS / "coffee.jpg", folder / "coffee.jpg")
    shutil.copy(ASSETS / "chelsea.jpg", folder / "chelsea.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def run(args, sam_files, tiny_detector_dir) -> int:
    return main(
        ["predict", *map(str, args), "--sam-checkpoint", str(sam_files[0]),
         "--detector", str(tiny_detector_dir), "--device", "cpu", "--max-detections", "3",
         "--box-threshold", "0", "--text-threshold", "0"]
    )


def test_folder_with_one_unreadable_image(inputs, tmp_path, sam_files, tiny_detector_dir, capsys):
    out = tmp_path / "out"
    code = run([inputs, "--prompt", "cup, cat", "--out", out], sam_files, tiny_detector_dir)
    assert code == 1
    error = capsys.readouterr().err
    assert "skipped" in error and "broken.jpg" in error and "2 of 3 images written" in error
    assert sorted(p.name for p in out.iterdir()) == ["chelsea.json", "chelsea.png", "coffee.json", "coffee.png"]
    for stem, (width, height) in {"coffee": (600, 400), "chelsea": (451, 300)}.items():
        exported = json.loads((out / f"{stem}.json").read_text())
        assert exported["file"] == f"{stem}.jpg" and exported["image"] == {"height": height, "width": width}
        assert len(exported["detections"]) == 3
        for detection in exported["detections"]:
            assert detection["label"] in {"cup", "cat"} and 0 <= detection["score"] <= 1
            mask = mask_utils.decode({"size": detection["mask"]["size"], "counts": detection["mask"]["counts"].encode()})
            assert mask.shape == (height, width)
        assert Image.open(out / f"{stem}.png").size == (width, height)


def test_nothing_detected_writes_the_image_unchanged(tmp_path, sam_files, tiny_detector_dir):
    out = tmp_path / "out"
    image = tmp_path / "astronaut.png"
    Image.open(ASSETS / "astronaut.jpg").save(image)
    code = main(["predict", str(image), "--prompt", "person", "--out", str(out),
                 "--sam-checkpoint", str(sam_files[0]), "--detector", str(tiny_detector_dir), "--box-threshold", "1"])
    assert code == 0
    assert json.loads((out / "astronaut.json").read_text())["detections"] == []
    np.testing.assert_array_equal(np.asarray(Image.open(out / "astronaut.png")), np.asarray(Image.open(image).convert("RGB")))


def test_bad_prompt_is_a_message_not_a_traceback(inputs, tmp_path, sam_files, tiny_detector_dir, capsys):
    code = run([inputs / "coffee.jpg", "--prompt", " ,, ", "--out", tmp_path / "out"], sam_files, tiny_detector_dir)
    error = capsys.readouterr().err
    assert code == 2 and "names no class" in error and "Traceback" not in error


def test_missing_weights_offline_is_a_message(tmp_path, tiny_detector_dir):
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "predict", str(ASSETS / "coffee.jpg"), "--prompt", "cup",
               "--sam-type", "vit_b", "--detector", str(tiny_detector_dir), "--out", str(tmp_path / "out")]
    env = {"TORCH_HOME": str(tmp_path / "torch"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 2
    assert "sam_vit_b_01ec64.pth" in completed.stderr and "dl.fbaipublicfiles.com" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    for option in ["--prompt", "--out", "--sam-type", "--sam-checkpoint", "--detector", "--box-threshold",
                   "--text-threshold", "--max-detections", "--device", "--dtype", "--skip-existing"]:
        assert option in text


def test_outputs_never_overwrite_inputs(tmp_path, sam_files, tiny_detector_dir, capsys):
    image = tmp_path / "photo.png"
    Image.open(ASSETS / "coffee.jpg").save(image)
    before = image.read_bytes()
    code = run([image, "--prompt", "cup", "--out", tmp_path], sam_files, tiny_detector_dir)
    assert code == 2 and "would overwrite the input" in capsys.readouterr().err
    assert image.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_inputs_sharing_a_name_get_separate_outputs(tmp_path, sam_files, tiny_detector_dir):
    for folder, source in (("a", "coffee.jpg"), ("b", "chelsea.jpg")):
        (tmp_path / folder).mkdir()
        shutil.copy(ASSETS / source, tmp_path / folder / "photo.jpg")
    out = tmp_path / "out"
    assert run([tmp_path / "a", tmp_path / "b", "--prompt", "cup", "--out", out], sam_files, tiny_detector_dir) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo.jpg-2.json", "photo.jpg-2.png", "photo.jpg.json", "photo.jpg.png"]
    assert json.loads((out / "photo.jpg-2.json").read_text())["image"] == {"height": 300, "width": 451}


def test_a_killed_run_keeps_finished_outputs_and_a_rerun_skips_them(tmp_path, sam_files, tiny_detector_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(6):
        shutil.copy(ASSETS / ("coffee.jpg" if index % 2 else "chelsea.jpg"), folder / f"photo{index}.jpg")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "predict", str(folder), "--prompt", "cup, cat",
               "--out", str(out), "--sam-checkpoint", str(sam_files[0]),
               "--detector", str(tiny_detector_dir), "--device", "cpu", "--max-detections", "3", "--box-threshold", "0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "photo1.json").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.kill()
    process.wait()
    finished = sorted(p.stem for p in out.glob("*.json"))
    assert 2 <= len(finished) < 6, "killed after some images, before the last"
    for stem in finished:
        assert json.loads((out / f"{stem}.json").read_text())["file"] == f"{stem}.jpg"
        Image.open(out / f"{stem}.png").load()  # every PNG that exists is whole
    written = {stem: (out / f"{stem}.json").stat().st_mtime_ns for stem in finished}
    resumed = subprocess.run([*command, "--skip-existing"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(finished)} of 6 images already have outputs" in resumed.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"photo{i}{s}" for i in range(6) for s in (".json", ".png"))
    assert all((out / f"{stem}.json").stat().st_mtime_ns == mtime for stem, mtime in written.items())


@pytest.mark.parametrize(("option", "message"), [(["--box-threshold", "-1"], "box_threshold"), (["--prompt", "🐱🚗"], "names no class")])
def test_bad_threshold_or_prompt_exits_2_with_a_message(inputs, tmp_path, sam_files, tiny_detector_dir, capsys, option, message):
    prompt = [] if option[0] == "--prompt" else ["--prompt", "cup"]
    code = main(["predict", str(inputs / "coffee.jpg"), "--out", str(tmp_path / "out"),
                 "--sam-checkpoint", str(sam_files[0]), "--detector", str(tiny_detector_dir), *prompt, *option])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "Traceback" not in error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_verbose_names_the_models_device_and_dtype(inputs, tmp_path, sam_files, tiny_detector_dir, capsys):
    code = run([inputs / "coffee.jpg", "--prompt", "cup", "--out", tmp_path / "out", "-v", "--dtype", "float32"], sam_files, tiny_detector_dir)
    assert code == 0
    error = capsys.readouterr().err
    assert "SAM tiny_sam_a (encoder width 192) + " in error and "on cpu, float32" in error


@pytest.mark.parametrize("kind", ["a file", "unwritable"])
def test_an_output_folder_that_cannot_hold_outputs_fails_before_any_work(kind, inputs, tmp_path, sam_files, tiny_detector_dir, capsys, monkeypatch):
    out = tmp_path / "taken.txt" if kind == "a file" else Path("/proc/lang-sam-out")  # /proc refuses new files even to root
    if kind == "a file":
        out.write_text("keep me")
    loads = []
    monkeypatch.setattr("lang_sam.pipeline.LangSAM.__init__", lambda *args, **kwargs: loads.append(1))
    code = run([inputs / "coffee.jpg", "--prompt", "cup", "--out", out], sam_files, tiny_detector_dir)
    error = capsys.readouterr().err
    assert code == 2 and "Traceback" not in error and loads == [], "refused before the models load"
    assert ("is a file, not a folder" if kind == "a file" else "cannot be written") in error
    if kind == "a file":
        assert out.read_text() == "keep me"


@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_eval_json_that_cannot_be_written_fails_before_any_work(where, tmp_path, capsys):
    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "cat"}]}))
    target = tmp_path / "nowhere" / "metrics.json" if where == "missing folder" else tmp_path
    code = main(["eval", "--coco", str(coco), "--images", str(tmp_path), "--json", str(target), "--sam-type", "vit_x"])
    error = capsys.readouterr().err
    assert code == 2 and "Traceback" not in error
    assert ("does not exist; create it first" if where == "missing folder" else "is a folder") in error


def test_outputs_get_the_users_umask_like_any_other_file(inputs, tmp_path, sam_files, tiny_detector_dir):
    from lang_sam.io.files import FILE_MODE

    umask = os.umask(0)
    os.umask(umask)
    assert FILE_MODE == 0o666 & ~umask
    assert run([inputs / "coffee.jpg", "--prompt", "cup", "--out", tmp_path / "out"], sam_files, tiny_detector_dir) == 0
    for name in ("coffee.png", "coffee.json"):
        assert (tmp_path / "out" / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_multimask_and_nms_options(inputs, tmp_path, sam_files, tiny_detector_dir, capsys):
    assert run([inputs / "chelsea.jpg", "--prompt", "cat", "--out", tmp_path / "one"], sam_files, tiny_detector_dir) == 0
    assert run([inputs / "chelsea.jpg", "--prompt", "cat", "--out", tmp_path / "three", "--multimask"], sam_files, tiny_detector_dir) == 0
    one, three = (json.loads((tmp_path / name / "chelsea.json").read_text())["detections"] for name in ("one", "three"))
    assert [d["box"] for d in one] == [d["box"] for d in three] and [d["mask"] for d in one] != [d["mask"] for d in three]
    code = run([inputs / "chelsea.jpg", "--prompt", "cat", "--out", tmp_path / "bad", "--nms-iou-threshold", "1.5"], sam_files, tiny_detector_dir)
    assert code == 2 and "nms_iou_threshold" in capsys.readouterr().err


def test_folders_are_walked_into_subfolders_and_never_into_the_output_folder(tmp_path, sam_files, tiny_detector_dir, capsys):
    photos = tmp_path / "photos"
    (photos / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(ASSETS / "coffee.jpg", photos / "top.jpg")
    shutil.copy(ASSETS / "chelsea.jpg", photos / "sub" / "deeper" / "nested.jpg")
    out = photos / "results"  # inside the folder it reads
    for _ in range(2):
        assert run([photos, "--prompt", "cup", "--out", out], sam_files, tiny_detector_dir) == 0
        assert "2 of 2 images written" in capsys.readouterr().err, "the drawings of the first run are not inputs"
    assert sorted(p.name for p in out.iterdir()) == ["nested.json", "nested.png", "top.json", "top.png"]


@pytest.mark.parametrize(("command", "named"), [
    (["predict", "photo.jpg", "--prompt", "cat", "--box-threshold", "2"], "box_threshold must be a number between 0 and 1, got 2.0"),
    (["predict", "photo.jpg", "--prompt", "cat", "--max-detections", "-1"], "max_detections must be a whole number >= 0"),
    (["predict", "photo.jpg", "--prompt", "cat", "--nms-iou-threshold", "nan"], "nms_iou_threshold must be a number"),
    (["label", "photos", "--classes", "cat", "--out", "out", "--text-threshold", "-0.5"], "text_threshold must be"),
    (["eval", "--coco", "instances.json", "--images", "photos", "--box-threshold", "1.5"], "box_threshold must be"),
    (["track", "clip.mp4", "--prompt", "cat", "--text-threshold", "7"], "text_threshold must be"),
])
def test_thresholds_are_checked_before_settings_or_models(command, named, monkeypatch, tmp_path, capsys):
    def no_settings(args):
        raise AssertionError("settings were read (and models would load) before the thresholds were checked")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("lang_sam.interfaces.cli.common.settings", no_settings)
    assert main(command) == 2
    error = capsys.readouterr().err
    assert named in error and "Traceback" not in error and list(tmp_path.iterdir()) == []


def torch_is_loading(process: subprocess.Popen) -> bool:
    """Wait until the process has mapped torch's library (it is importing torch: the seconds a
    command spends starting up), or has ended; True in the first case."""
    maps = Path(f"/proc/{process.pid}/maps")
    while process.poll() is None:
        try:
            if "libtorch" in maps.read_text():
                return True
        except OSError:  # the process ended between poll() and the read
            return False
        time.sleep(0.002)
    return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the process's memory map from /proc")
def test_ctrl_c_while_label_is_still_starting_is_one_line_not_a_traceback(tmp_path):
    """Ctrl+C in label's first seconds, while torch is still being imported (which ran before main()
    could catch anything): a one-line message and exit 130."""
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(ASSETS / "coffee.jpg", images / "coffee.jpg")
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "label", str(images), "--classes", "cup",
               "--out", str(tmp_path / "out"), "--sam-checkpoint", str(tmp_path / "no-sam.pth"), "--device", "cpu"]
    environment = {key: value for key, value in os.environ.items() if key != "LANG_SAM_TEST_AUTO_DTYPE"}  # imports torch at start-up
    # SIGINT as in a terminal: a suite started in the background (``pytest &`` from a script) ignores it, and
    # its children would inherit that
    process = subprocess.Popen(command, env={**environment, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        loading = torch_is_loading(process)
        process.send_signal(signal.SIGINT)
        _, error = process.communicate(timeout=600)
    finally:
        process.kill()
    assert loading, f"the process ended before it imported torch: {error}"
    assert process.returncode == 130 and "Traceback" not in error, error
    assert error.strip().splitlines()[-1].startswith("lang-sam: interrupted"), error


def test_export_onnx_flags_are_settings_read_like_every_subcommand(monkeypatch, tmp_path):
    """export-onnx's --checkpoint is the sam_checkpoint setting, read by the shared
    common.settings: the flag wins over $LANG_SAM_SAM_CHECKPOINT, which wins over the default."""
    from lang_sam.interfaces.cli import build_parser
    from lang_sam.interfaces.cli.common import settings
    from lang_sam.settings import ENVIRONMENT_VARIABLES, Settings

    for variable in ENVIRONMENT_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    assert settings(build_parser().parse_args(["export-onnx", "--out", "o"])) == Settings()
    monkeypatch.setenv("LANG_SAM_SAM_CHECKPOINT", "variable.pth")
    monkeypatch.setenv("LANG_SAM_CHECKPOINTS", str(tmp_path))
    args = build_parser().parse_args(["export-onnx", "--out", "o"])
    assert settings(args) == Settings(sam_checkpoint="variable.pth", checkpoint_dir=str(tmp_path))
    args = build_parser().parse_args(["export-onnx", "--out", "o", "--checkpoint", "flag.pth", "--sam-type", "vit_b"])
    assert settings(args) == Settings(sam_type="vit_b", sam_checkpoint="flag.pth", checkpoint_dir=str(tmp_path))
