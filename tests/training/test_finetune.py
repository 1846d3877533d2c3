"""lang-sam finetune end to end on a small dataset: what it writes (and that both formats load and
agree), the validation mIoU measured again independently, a killed run resumed to the weights of
an uninterrupted one, two DDP processes on the CPU, and bad input refused before training."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lang_sam.errors import CheckpointError, InvalidImageError, InvalidOptionError
from lang_sam.segmenter.build import build_sam
from lang_sam.training.finetune import FinetuneConfig, finetune

REPOSITORY = Path(__file__).resolve().parents[2]
EPOCHS = 3


def config_for(ellipse_dataset, start_sam, out: Path, cache: Path, **changes) -> FinetuneConfig:
    coco, images = ellipse_dataset
    config = FinetuneConfig(coco=coco, images=images, out=out, sam_type=None, sam_checkpoint=start_sam, epochs=EPOCHS,
                            val_fraction=0.34, batch_size=4, learning_rate=1e-4, cache_dir=cache, show_progress=False,
                            accelerator="cpu")
    return replace(config, **changes)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def run(ellipse_dataset, start_sam, cache, tmp_path_factory) -> tuple[Path, dict]:
    """One uninterrupted run of EPOCHS epochs."""
    out = tmp_path_factory.mktemp("run") / "run"
    return out, finetune(config_for(ellipse_dataset, start_sam, out, cache))


def test_a_run_writes_the_best_model_in_both_formats(run, start_sam, ellipse_dataset, cache):
    from transformers import SamModel

    out, summary = run
    assert (summary["train_instances"], summary["val_instances"], summary["val_images"]) == (12, 6, 2)
    assert summary["steps"] == EPOCHS * 3 and summary["epochs"] == EPOCHS
    logged = [float(row["val_miou"]) for row in csv.DictReader((out / "logs" / "version_0" / "metrics.csv").open())
              if row.get("val_miou")]
    assert len(logged) == EPOCHS + 1, "the untrained model's score, then one per epoch"
    assert summary["val_miou_before"] == pytest.approx(logged[0]) and summary["val_miou_best"] == pytest.approx(max(logged[1:]))
    assert json.loads((out / "summary.json").read_text())["val_miou_best"] == summary["val_miou_best"]
    start, trained = build_sam(checkpoint=start_sam).state_dict(), build_sam(checkpoint=out / "model.pth").state_dict()
    frozen = [name for name in start if not name.startswith("mask_decoder.")]
    assert all(torch.equal(start[name], trained[name]) for name in frozen), "the image and prompt encoders are unchanged"
    multimask_heads = [name for name in start if name.startswith(("mask_decoder.output_hypernetworks_mlps.1.",
                                                                   "mask_decoder.output_hypernetworks_mlps.2.",
                                                                   "mask_decoder.output_hypernetworks_mlps.3."))]
    assert multimask_heads and all(torch.equal(start[name], trained[name]) for name in multimask_heads)
    trained_names = [name for name in start if name.startswith("mask_decoder.") and name not in multimask_heads]
    assert all(not torch.equal(start[name], trained[name]) for name in trained_names), "the rest of the decoder was trained"
    from_hf = build_sam(checkpoint=out / "hf").state_dict()
    assert all(torch.equal(from_hf[name], trained[name]) for name in trained), "hf/ holds the same weights"
    assert SamModel.from_pretrained(out / "hf") is not None
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["state_dict"] and not any(name.startswith("sam.image_encoder.") for name in last["state_dict"]), \
        "checkpoints leave the frozen image encoder out"
    names = sorted(path.name for path in (out / "checkpoints").iterdir())
    assert len([name for name in names if name.startswith("best-")]) == 1 and f"epoch-epoch={EPOCHS - 1}.ckpt" in names
    assert (out / "checkpoints" / "last.ckpt").resolve().name == f"epoch-epoch={EPOCHS - 1}.ckpt", \
        "last.ckpt is the latest epoch, improved or not"
    stored = list(cache.glob("*/*.safetensors"))
    assert len(stored) == 6, "each image encoded once, kept for later runs"


def test_the_best_mious_is_the_box_prompted_miou_measured_again(run, ellipse_dataset):
    """The validation mIoU of the best model, measured again with our SAM (behind the Segmenter interface) on the held-out
    images at their own size (lang-sam eval --sam-only's code)."""
    from lang_sam.datasets.coco import train_val_split
    from lang_sam.datasets.evaluation import evaluate_sam_only, load_ground_truth
    from lang_sam.segmenter.adapter import SamV1Segmenter

    out, summary = run
    coco, images = ellipse_dataset
    ground_truth = load_ground_truth(json.loads(coco.read_text()))
    _, val_names = train_val_split([info["file_name"] for info in ground_truth.dataset["images"]], 0.34)
    val_ids = [info["id"] for info in ground_truth.dataset["images"] if info["file_name"] in val_names]
    measured = evaluate_sam_only(SamV1Segmenter(build_sam(checkpoint=out / "model.pth"), "finetuned"), ground_truth, images, val_ids)
    assert measured["instances"] == summary["val_instances"]
    assert measured["mean_iou"] == pytest.approx(summary["val_miou_best"], abs=1e-4)


def test_the_module_lowers_sams_loss_on_a_batch(start_sam):
    from lang_sam.training.losses import sam_loss
    from lang_sam.training.module import SamFinetuneModule

    module = SamFinetuneModule(build_sam(checkpoint=start_sam), learning_rate=1e-3)
    optimizer = module.configure_optimizers()
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 256, 64, 64, generator=generator)
    boxes = torch.tensor([[100.0, 100.0, 400.0, 500.0], [500, 500, 900, 700]])
    targets = torch.zeros(2, 256, 256)
    for target, (x0, y0, x1, y1) in zip(targets, (boxes / 4).long().tolist()):
        target[y0:y1, x0:x1] = 1
    losses = []
    for _ in range(10):
        loss = sam_loss(*module(features, boxes), targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


KILLED_RUN = """
import json, os, signal, sys
import lightning as L
from pathlib import Path
from lang_sam.training.finetune import FinetuneConfig, finetune

class KillAtEpoch(L.Callback):
    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)

fields = json.loads(sys.argv[1])
finetune(FinetuneConfig(**{k: Path(v) if k in ("coco", "images", "out", "sam_checkpoint", "cache_dir") else v
                           for k, v in fields.items()}), callbacks=[KillAtEpoch()])
"""


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(run, ellipse_dataset, start_sam, cache, tmp_path):
    out = tmp_path / "killed"
    config = config_for(ellipse_dataset, start_sam, out, cache)
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in config.__dict__.items()}
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, json.dumps(fields)], cwd=REPOSITORY,
                            env={**os.environ, "PYTHONPATH": str(REPOSITORY)}, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (out / "checkpoints" / "last.ckpt").is_file() and not (out / "model.pth").exists(), \
        "killed mid-run: a checkpoint to resume from, no model written"
    with pytest.raises(InvalidOptionError, match="holds a run already"):
        finetune(config)
    summary = finetune(replace(config, resume=True))
    assert summary["steps"] == EPOCHS * 3 and summary["val_miou_before"] is None
    resumed, uninterrupted = torch.load(out / "model.pth", weights_only=True), torch.load(run[0] / "model.pth", weights_only=True)
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        torch.testing.assert_close(resumed[name], uninterrupted[name], rtol=0, atol=1e-6, msg=name)


def test_ddp_on_two_cpu_processes(ellipse_dataset, start_sam, cache, tmp_path):
    coco, images = ellipse_dataset
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "finetune", "--coco", str(coco), "--images", str(images),
               "--out", str(out), "--sam-checkpoint", str(start_sam), "--epochs", "1", "--val-fraction", "0.34",
               "--batch-size", "4", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--cache-dir", str(cache),
               "--quiet"]
    environment = {key: value for key, value in os.environ.items() if key != "LANG_SAM_SAM_TYPE"}
    finished = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "MEMBER: 2/2" in finished.stderr, "two processes trained"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2, "12 instances, 4 per step and process: 2 steps (one process takes 3)"
    assert build_sam(checkpoint=out / "model.pth") is not None and "validation mIoU" in finished.stdout
    assert ("no epoch beat the untrained model" in finished.stderr) == (summary["val_miou_best"] <= summary["val_miou_before"])


@pytest.mark.parametrize("problem", ["no mask", "image missing", "no instance", "another size", "nothing to resume"])
def test_bad_input_is_refused_before_training(problem, ellipse_dataset, start_sam, cache, tmp_path):
    coco, images = ellipse_dataset
    dataset = json.loads(coco.read_text())
    changes: dict = {}
    if problem in ("no mask", "no instance"):
        if problem == "no mask":
            del dataset["annotations"][4]["segmentation"]
        else:
            dataset["annotations"] = []
        changes["coco"] = tmp_path / "instances.json"
        changes["coco"].write_text(json.dumps(dataset))
    if problem == "image missing":
        changes["images"] = tmp_path / "images"
        shutil.copytree(images, changes["images"])
        (changes["images"] / dataset["images"][1]["file_name"]).unlink()
    if problem == "another size":
        changes["sam_type"] = "vit_b"
    if problem == "nothing to resume":
        changes["resume"] = True
    expected = {"no mask": (InvalidOptionError, "annotations have no mask"),
                "image missing": (InvalidImageError, "annotated images are not in"),
                "no instance": (InvalidOptionError, "no object with a mask"),
                "another size": (CheckpointError, "vit_b"),
                "nothing to resume": (InvalidOptionError, "no run to resume")}[problem]
    out = tmp_path / "out"
    with pytest.raises(expected[0], match=expected[1]):
        finetune(config_for(ellipse_dataset, start_sam, out, cache, **changes))
    assert not (out / "model.pth").exists() and not (out / "checkpoints").exists()


def rle_of(mask) -> dict:
    from lang_sam.results import encode_rles

    return encode_rles(np.asarray(mask, bool)[None])[0]


# Each bad annotation (put on annotation id 2, on image 1): what it does, and the words of its line in the report.
BAD_ANNOTATIONS = {
    "image_id without an image": (lambda a, h, w: a.update(image_id=999), "name an image_id that is not in images"),
    "no id": (lambda a, h, w: a.pop("id"), "have no id"),
    "a polygon of 2 numbers": (lambda a, h, w: a.update(segmentation=[[10, 20]]), "fewer than 3 points"),
    "a polygon of 4 numbers": (lambda a, h, w: a.update(segmentation=[[10, 20, 30, 40]]), "fewer than 3 points"),
    "a polygon of text": (lambda a, h, w: a.update(segmentation=[["a", "b", "c", "d", "e", "f"]]), "not numbers"),
    "segmentation 5": (lambda a, h, w: a.update(segmentation=5), "neither a list of polygons nor an RLE"),
    "RLE counts that do not decode": (lambda a, h, w: a.update(segmentation={"size": [h, w], "counts": "not RLE!"}),
                                      "counts that do not decode"),
    "RLE counts that stop short": (lambda a, h, w: a.update(segmentation={"size": [h, w], "counts": "1"}),
                                   "counts that do not decode"),
    "uncompressed RLE counts that stop short": (lambda a, h, w: a.update(segmentation={"size": [h, w], "counts": [5, 7]}),
                                                "counts that do not decode"),
    "RLE of another size": (lambda a, h, w: a.update(segmentation=rle_of(np.ones((h + 1, w)))),
                            "size is not its image's"),
}


def with_bad_annotations(coco: Path, folder: Path, problems: list[str]) -> tuple[Path, list[object]]:
    """A copy of the COCO file with each problem put on its own annotation (ids 2, 3, ...); the ids
    (or positions) the report must name."""
    dataset = json.loads(coco.read_text())
    height, width = dataset["images"][0]["height"], dataset["images"][0]["width"]
    named = []
    for position, problem in enumerate(problems, start=1):
        annotation = dataset["annotations"][position]
        annotation["image_id"] = 1
        BAD_ANNOTATIONS[problem][0](annotation, height, width)
        named.append(annotation.get("id", f"annotations[{position}]"))
    path = folder / "instances.json"
    path.write_text(json.dumps(dataset))
    return path, named


@pytest.mark.parametrize("problem", sorted(BAD_ANNOTATIONS))
def test_a_bad_annotation_is_named_before_anything_loads(problem, ellipse_dataset, tmp_path):
    from lang_sam.training.data import read_finetune_dataset

    coco, named = with_bad_annotations(ellipse_dataset[0], tmp_path, [problem])
    with pytest.raises(InvalidOptionError, match="cannot be used for fine-tuning") as caught:
        read_finetune_dataset(coco, ellipse_dataset[1], 0.34)
    line = next(line for line in str(caught.value).splitlines() if BAD_ANNOTATIONS[problem][1] in line)
    assert line.endswith(f": {named[0]}"), str(caught.value)


def test_every_bad_annotation_is_reported_at_once_and_the_cli_writes_nothing(ellipse_dataset, start_sam, cache, tmp_path,
                                                                             capsys):
    from lang_sam.interfaces.cli import main

    problems = sorted(BAD_ANNOTATIONS)
    coco, named = with_bad_annotations(ellipse_dataset[0], tmp_path, problems)
    out = tmp_path / "out"
    code = main(["finetune", "--coco", str(coco), "--images", str(ellipse_dataset[1]), "--out", str(out),
                 "--sam-checkpoint", str(start_sam), "--accelerator", "cpu", "--cache-dir", str(cache), "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and "Traceback" not in error, error
    assert f"{len(problems)} of 18 annotations cannot be used for fine-tuning" in error
    for problem, name in zip(problems, named):
        line = next(line for line in error.splitlines() if BAD_ANNOTATIONS[problem][1] in line)
        assert re.search(rf"(: |, ){re.escape(str(name))}(,|$)", line), (problem, line)
    assert not out.exists(), "nothing written: no logs/, no checkpoints/"


@pytest.mark.parametrize("option, message", [
    (["--devices", "0"], "--devices must be a whole number >= 1"),
    (["--devices", "-3"], "--devices must be a whole number >= 1"),
    (["--batch-size", "0"], "--batch-size must be a whole number >= 1"),
    (["--epochs", "0"], "--epochs must be a whole number >= 1"),
    (["--max-steps", "0"], "--max-steps must be -1"),
    (["--lr", "-1"], "--lr must be a number > 0"),
    (["--points-per-box", "-1"], "--points-per-box must be a whole number >= 0"),
    (["--box-jitter", "nan"], "--box-jitter must be a number >= 0"),
    (["--precision", "bf17"], "Precision 'bf17' is invalid"),
    (["--strategy", "bogus"], "invalid strategy name"),
])
def test_training_options_are_refused_before_anything_loads(option, message, ellipse_dataset, tmp_path, capsys):
    """A SAM that does not exist: reaching it would be another error."""
    from lang_sam.interfaces.cli import main

    coco, images = ellipse_dataset
    out = tmp_path / "out"
    code = main(["finetune", "--coco", str(coco), "--images", str(images), "--out", str(out), "--sam-checkpoint",
                 str(tmp_path / "no-sam.pth"), "--accelerator", "cpu", "--quiet", *option])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "Traceback" not in error, error
    assert not out.exists()


class RunsCode:
    """Unpickling this would create the file named: a checkpoint that runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("kind", ["garbage", "code", "not a Lightning checkpoint"])
def test_resuming_from_a_bad_last_checkpoint_is_refused_naming_it(kind, ellipse_dataset, start_sam, cache, tmp_path):
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    if kind == "garbage":
        last.write_bytes(os.urandom(2048))
    elif kind == "code":
        torch.save({"state_dict": {}, "epoch": RunsCode(marker)}, last)
    else:
        torch.save({"weight": torch.zeros(2)}, last)
    with pytest.raises(CheckpointError) as caught:
        finetune(config_for(ellipse_dataset, start_sam, out, cache, resume=True))
    message = str(caught.value)
    assert str(last) in message and "weights_only" not in message, message
    assert not marker.exists(), "the checkpoint's code never ran"
    assert sorted(path.name for path in out.iterdir()) == ["checkpoints"] and not (out / "logs").exists()
