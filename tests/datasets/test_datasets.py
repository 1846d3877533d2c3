"""lang-sam label and eval on COCO val2017 images from ../shared/data, with random models."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy.ndimage import binary_fill_holes

from lang_sam.datasets.evaluation import coco_metrics, load_ground_truth
from tests.conftest import SHARED_DATA, TINY_A, TINY_B

COCO = SHARED_DATA / "coco-val-subset"
pytestmark = pytest.mark.skipif(not (COCO / "instances.json").is_file(), reason=f"{COCO} is absent (shared test data)")
CLASSES = "person, dog, car, chair"
IMAGES = 6


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    """The first IMAGES COCO images (links), one unreadable file, and their ground truth alone."""
    dataset = json.loads((COCO / "instances.json").read_text())
    images = sorted(dataset["images"], key=lambda image: image["file_name"])[:IMAGES]
    folder = tmp_path_factory.mktemp("coco-images")
    for image in images:
        (folder / image["file_name"]).symlink_to(COCO / "images" / image["file_name"])
    (folder / "zz-unreadable.jpg").write_bytes(b"not a jpeg")
    ids = {image["id"] for image in images}
    truth = {**dataset, "images": images, "annotations": [a for a in dataset["annotations"] if a["image_id"] in ids]}
    truth_path = folder.parent / "instances-subset.json"
    truth_path.write_text(json.dumps(truth))
    return folder, truth_path, truth


def command(name: str, service_models, *arguments) -> list[str]:
    checkpoints, detector = service_models
    return [sys.executable, "-m", "lang_sam.interfaces.cli", name, *map(str, arguments),
            "--sam-checkpoint", str(checkpoints / f"{TINY_A}.pth"), "--detector", str(detector),
            "--device", "cpu", "--box-threshold", "0", "--text-threshold", "0"]


def label(subset, service_models, out, *extra) -> list[str]:
    return command("label", service_models, subset[0], "--classes", CLASSES, "--out", out, "--chunk-size", "2",
                   "--batch-size", "2", "--max-detections", "3", *extra)


@pytest.fixture(scope="module")
def labelled(subset, service_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("labelled")
    completed = subprocess.run(label(subset, service_models, out, "--yolo"), capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr
    return out, completed.stderr


def test_label_writes_coco_yolo_and_a_report(subset, labelled):
    out, log = labelled
    folder, _, truth = subset
    dataset = json.loads((out / "annotations.json").read_text())
    assert [c["name"] for c in dataset["categories"]] == ["person", "dog", "car", "chair"]
    assert [i["file_name"] for i in dataset["images"]] == sorted(i["file_name"] for i in truth["images"])
    sizes = {i["file_name"]: (i["height"], i["width"]) for i in truth["images"]}
    assert all((i["height"], i["width"]) == sizes[i["file_name"]] for i in dataset["images"])
    assert len(dataset["annotations"]) == 3 * IMAGES
    by_id = {i["id"]: i for i in dataset["images"]}
    for annotation in dataset["annotations"]:
        image = by_id[annotation["image_id"]]
        rle = {"size": annotation["segmentation"]["size"], "counts": annotation["segmentation"]["counts"].encode()}
        mask = mask_utils.decode(rle)
        assert mask.shape == (image["height"], image["width"]) and mask.sum() == annotation["area"]
        x, y, w, h = annotation["bbox"]
        assert 0 <= x <= x + w <= image["width"] + 0.01 and 0 <= y <= y + h <= image["height"] + 0.01
        assert 1 <= annotation["category_id"] <= 4 and 0 <= annotation["score"] <= 1
    load_ground_truth(dataset)  # pycocotools reads it
    report = json.loads((out / "report.json").read_text())
    assert report["labelled"] == IMAGES and [u["file_name"] for u in report["unreadable"]] == ["zz-unreadable.jpg"]
    assert "images/s" in log and "waited" in log


# Ultralytics' loader, run in its own process: importing ultralytics replaces PIL.Image.open for the
# whole process (with a version that tries to install pi-heif for files PIL cannot identify).
ULTRALYTICS_READER = """
import json, sys
from ultralytics.data import YOLODataset
from ultralytics.data.utils import check_det_dataset
data = check_det_dataset(sys.argv[1])
labels = {split: [{"im_file": label["im_file"], "shape": list(label["shape"]), "cls": label["cls"][:, 0].tolist(),
                   "segments": [segment.tolist() for segment in label["segments"]]}
                  for label in YOLODataset(img_path=data[split], data=data, task="segment", augment=False).labels]
          for split in ("train", "val")}
print(json.dumps({"names": data["names"], "nc": data["nc"], "labels": labels}))
"""


def test_the_yolo_dataset_reads_in_ultralytics_and_its_polygons_redraw_the_masks(labelled, tmp_path):
    """Ultralytics' own loader reads dataset.yaml (train and val) and every label; the polygons it
    reads, filled, give back each image's masks of each class (every part of every mask kept)."""
    import cv2

    out, _ = labelled
    environment = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path), "YOLO_OFFLINE": "1"}
    completed = subprocess.run([sys.executable, "-c", ULTRALYTICS_READER, str(out / "dataset.yaml")], capture_output=True,
                               text=True, timeout=600, env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]
    data = json.loads(completed.stdout.strip().splitlines()[-1])
    assert data["names"] == {"0": "person", "1": "dog", "2": "car", "3": "chair"} and data["nc"] == 4
    dataset = json.loads((out / "annotations.json").read_text())
    files = sorted(image["file_name"] for image in dataset["images"])
    listed = {split: sorted(labels, key=lambda label: label["im_file"]) for split, labels in data["labels"].items()}
    assert sorted(os.path.basename(label["im_file"]) for labels in listed.values() for label in labels) == files
    assert len(listed["val"]) == 1, "every 10th image validates, and at least one"
    by_name = {image["file_name"]: image for image in dataset["images"]}
    for label in listed["train"] + listed["val"]:
        image = by_name[os.path.basename(label["im_file"])]
        height, width = image["height"], image["width"]
        assert label["shape"] == [height, width] and len(label["segments"]) == len(label["cls"]) >= 1
        for class_index, name in ((int(key), value) for key, value in data["names"].items()):
            category = next(c["id"] for c in dataset["categories"] if c["name"] == name)
            masks = [mask_utils.decode({"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"].encode()})
                     for a in dataset["annotations"] if a["image_id"] == image["id"] and a["category_id"] == category]
            expected = np.any(masks, axis=0) if masks else np.zeros((height, width), bool)
            drawn = np.zeros((height, width), np.uint8)
            for segment, cls in zip(label["segments"], label["cls"]):
                if int(cls) == class_index:
                    cv2.fillPoly(drawn, [np.round(np.array(segment) * [width, height]).astype(np.int32)], 1)
            # random masks are noise: parts of a pixel or two have no outline, and a part whose holes
            # supervision cannot join is written filled (a real mask draws back exactly: next test)
            assert (expected & (drawn == 0)).sum() <= 0.001 * expected.sum() + 1, (image["file_name"], name)
            assert (drawn.astype(bool) & ~binary_fill_holes(expected)).sum() <= 0.02 * expected.sum(), (image["file_name"], name)


def test_yolo_polygons_of_real_object_masks_draw_them_back():
    """COCO's own masks (holes, several parts) written as YOLO lines and filled again."""
    import cv2

    from lang_sam.datasets.coco import yolo_segmentation_lines

    dataset = json.loads((COCO / "instances.json").read_text())
    images = {image["id"]: image for image in dataset["images"]}
    parts = 0
    for annotation in dataset["annotations"][:150]:
        image = images[annotation["image_id"]]
        height, width = image["height"], image["width"]
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation["counts"], list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        mask = mask_utils.decode(rle).astype(bool)
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        record = {"image": {"height": height, "width": width}, "detections": [
            {"label": "thing", "box": [0, 0, 1, 1], "mask": {"size": encoded["size"], "counts": encoded["counts"].decode()}}]}
        lines = yolo_segmentation_lines(record, ["thing"])
        drawn = np.zeros((height, width), np.uint8)
        for line in lines:
            values = line.split()
            assert values[0] == "0" and len(values) % 2 == 1 and all(0 <= float(v) <= 1 for v in values[1:])
            cv2.fillPoly(drawn, [np.round(np.array(values[1:], float).reshape(-1, 2) * [width, height]).astype(np.int32)], 1)
        drawn = drawn.astype(bool)
        assert (drawn & mask).sum() / (drawn | mask).sum() > 0.998, annotation["id"]
        parts += len(lines) > 1
    assert parts > 0, "some masks have several parts, each its own line"


def test_labelled_dataset_evaluates_against_the_ground_truth(subset, labelled):
    """Label, then measure: the labels as COCO predictions for the ground truth's images."""
    ground_truth = load_ground_truth(subset[2])
    by_name = {image["file_name"]: image["id"] for image in subset[2]["images"]}
    truth_ids = {c["name"]: c["id"] for c in subset[2]["categories"]}
    dataset = json.loads((labelled[0] / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in dataset["categories"]}
    files = {image["id"]: image["file_name"] for image in dataset["images"]}
    predictions = [
        {"image_id": by_name[files[a["image_id"]]], "category_id": truth_ids[names[a["category_id"]]],
         "segmentation": a["segmentation"], "bbox": a["bbox"], "score": a["score"]}
        for a in dataset["annotations"]
    ]
    metrics = coco_metrics(ground_truth, predictions)
    assert 0 <= metrics["mask"]["AP"] <= 1 and 0 <= metrics["box"]["AP"] <= 1
    assert set(metrics["mask"]["per_class"]) == {c["name"] for c in subset[2]["categories"]
                                                 if any(a["category_id"] == c["id"] for a in subset[2]["annotations"])}


def test_a_killed_run_resumes_to_the_same_dataset(subset, service_models, labelled, tmp_path):
    out = tmp_path / "resumed"
    process = subprocess.Popen(label(subset, service_models, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (out / "progress" / "chunk-00000.json").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.kill()
    process.wait()
    done = sorted(p.name for p in (out / "progress").glob("chunk-*.json"))
    assert 1 <= len(done) < 4, "killed after the first chunk, before the last"
    completed = subprocess.run(label(subset, service_models, out), capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr
    assert_same_dataset(json.loads((out / "annotations.json").read_text()), json.loads((labelled[0] / "annotations.json").read_text()))
    assert not list((out / "progress").glob(".*")), "no temporary file is left"


def assert_same_dataset(found: dict, expected: dict) -> None:
    """Equal COCO datasets up to the float noise of two processes (MKL's results depend on memory
    alignment: a score may move by 1e-6 and a mask pixel flip between runs of the same model)."""
    assert found["images"] == expected["images"] and found["categories"] == expected["categories"]
    assert len(found["annotations"]) == len(expected["annotations"])
    for ours, theirs in zip(found["annotations"], expected["annotations"]):
        assert (ours["id"], ours["image_id"], ours["category_id"]) == (theirs["id"], theirs["image_id"], theirs["category_id"])
        assert np.allclose(ours["bbox"], theirs["bbox"], atol=0.01)
        assert abs(ours["score"] - theirs["score"]) < 1e-5 and abs(ours["mask_score"] - theirs["mask_score"]) < 1e-5
        masks = [mask_utils.decode({"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"].encode()})
                 for a in (ours, theirs)]
        assert (masks[0] != masks[1]).sum() <= 0.001 * masks[1].sum() + 2


def test_another_job_in_the_same_folder_is_refused(subset, service_models, labelled):
    checkpoints, detector = service_models
    completed = subprocess.run(
        command("label", service_models, subset[0], "--classes", "cat", "--out", labelled[0]), capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 2 and "other images, classes or settings" in completed.stderr


def test_resuming_with_other_models_is_refused_naming_both(subset, service_models, labelled):
    checkpoints, _ = service_models
    other_sam = [part if part != str(checkpoints / f"{TINY_A}.pth") else str(checkpoints / f"{TINY_B}.pth")
                 for part in label(subset, service_models, labelled[0], "--yolo")]
    for command_line, changed in ((other_sam, f"SAM {TINY_B}"), ([*label(subset, service_models, labelled[0]), "--dtype", "bfloat16"], "bfloat16")):
        completed = subprocess.run(command_line, capture_output=True, text=True, timeout=300)
        assert completed.returncode == 2 and "Traceback" not in completed.stderr
        assert "made with other models" in completed.stderr and changed in completed.stderr.split("this run would use")[1]
        assert f"SAM {TINY_A}" in completed.stderr.split("this run would use")[0]


def test_ray_engine_gives_the_single_machine_dataset(subset, service_models, labelled, tmp_path):
    out = tmp_path / "ray"
    environment = {**os.environ, "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    completed = subprocess.run(
        label((f"file://{subset[0]}", *subset[1:]), service_models, out, "--engine", "ray", "--ray-actors", "1",
              "--cpus-per-actor", "2"),  # a URI: images are read through pyarrow, as from object storage
        capture_output=True, text=True, timeout=900, env=environment,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    ray_dataset = json.loads((out / "annotations.json").read_text())
    local_dataset = json.loads((labelled[0] / "annotations.json").read_text())
    assert_same_dataset(ray_dataset, local_dataset)


def pycocotools_metrics(truth: dict, folder, sam_checkpoint, detector, limit: int) -> dict:
    """The same evaluation made directly: LangSAM's predictions on the first images, scored by
    pycocotools' COCOeval alone (no lang_sam.datasets code)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from lang_sam import LangSAM

    model = LangSAM(sam_checkpoint=sam_checkpoint, detector=detector, device="cpu", dtype="float32")
    ids = {category["name"]: category["id"] for category in truth["categories"]}
    images = sorted(truth["images"], key=lambda image: image["id"])[:limit]
    predictions = []
    for image in images:
        result = model.predict(folder / image["file_name"], classes=list(ids), box_threshold=0.0, text_threshold=0.0)
        for label, score, rle, (x0, y0, x1, y1) in zip(result.phrases, result.logits, result.to_coco_rle(), result.boxes):
            predictions.append({"image_id": image["id"], "category_id": ids[label], "segmentation": rle,
                                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "score": float(score)})
    found = {"predictions": len(predictions)}
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = json.loads(json.dumps(truth))
        ground_truth.createIndex()
        for iou_type, key in (("segm", "mask"), ("bbox", "box")):
            evaluation = COCOeval(ground_truth, ground_truth.loadRes(json.loads(json.dumps(predictions))), iou_type)
            evaluation.params.imgIds = [image["id"] for image in images]
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            found[key] = list(evaluation.stats[:3])
            found[f"{key}_precision"] = evaluation.eval["precision"][:, :, :, 0, -1]
    return found


def test_eval_reports_coco_ap_and_sam_only_iou(subset, service_models, tmp_path):
    folder, truth_path, truth = subset
    metrics_path = tmp_path / "metrics.json"
    completed = subprocess.run(
        command("eval", service_models, "--coco", truth_path, "--images", folder, "--limit", "2", "--json", metrics_path),
        capture_output=True, text=True, timeout=900,
    )
    assert completed.returncode == 0, completed.stderr
    metrics = json.loads(metrics_path.read_text())
    checkpoints, detector = service_models
    expected = pycocotools_metrics(truth, folder, checkpoints / f"{TINY_A}.pth", detector, limit=2)
    assert metrics["images"] == 2 and metrics["predictions"] == expected["predictions"] == 2 * 50, "every query of 2 images"
    for key in ("mask", "box"):
        for name, position in (("AP", 0), ("AP50", 1), ("AP75", 2)):
            assert metrics[key][name] == pytest.approx(expected[key][position], abs=1e-6), (key, name)
        curve, precision = metrics[key]["pr_curve"], expected[f"{key}_precision"]  # [IoU, recall, class]
        assert curve["recall"] == [round(r, 2) for r in np.linspace(0, 1, 101)]
        with_truth = [k for k in range(precision.shape[2]) if (precision[0, :, k] > -1).all()]
        assert curve["precision_iou50"] == pytest.approx(precision[0][:, with_truth].mean(axis=1), abs=1e-6)
        assert curve["precision_iou50_95"] == pytest.approx(precision[:, :, with_truth].mean(axis=(0, 2)), abs=1e-6)
        assert np.mean(curve["precision_iou50"]) == pytest.approx(metrics[key]["AP50"], abs=1e-5), "AP50 is the curve's mean"
    assert "mask AP" in completed.stdout and "all" in completed.stdout
    sam_only = subprocess.run(
        command("eval", service_models, "--coco", truth_path, "--images", folder, "--limit", "2", "--sam-only", "--json", metrics_path),
        capture_output=True, text=True, timeout=900,
    )
    assert sam_only.returncode == 0, sam_only.stderr
    result = json.loads(metrics_path.read_text())
    first_two = {image["id"] for image in sorted(truth["images"], key=lambda image: image["id"])[:2]}
    instances = [a for a in truth["annotations"] if a["image_id"] in first_two and not a["iscrowd"]]
    assert result["instances"] == len(instances) and 0 <= result["mean_iou"] <= 1
    assert set(result["per_class"]) <= {c["name"] for c in truth["categories"]}


def ground_truth_as_predictions(ground_truth, shift: int = 0) -> list[dict]:
    predictions = []
    for annotation in ground_truth.loadAnns(ground_truth.getAnnIds()):
        if annotation["iscrowd"]:
            continue
        mask = np.roll(ground_truth.annToMask(annotation), shift, axis=1)
        rle = mask_utils.encode(np.asfortranarray(mask))
        x, y, w, h = annotation["bbox"]
        predictions.append({"image_id": annotation["image_id"], "category_id": annotation["category_id"],
                            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                            "bbox": [x + shift, y, w, h], "score": 1.0})
    return predictions


def test_metrics_give_one_for_the_ground_truth_and_less_for_shifted_masks(subset):
    ground_truth = load_ground_truth(subset[2])
    perfect = coco_metrics(ground_truth, ground_truth_as_predictions(ground_truth))
    assert perfect["mask"]["AP"] == pytest.approx(1.0) and perfect["box"]["AP"] == pytest.approx(1.0)
    assert all(value == pytest.approx(1.0) for value in perfect["mask"]["per_class"].values())
    shifted = coco_metrics(ground_truth, ground_truth_as_predictions(ground_truth, shift=15))
    assert shifted["mask"]["AP"] < 0.9 and shifted["box"]["AP"] < 0.9
    assert coco_metrics(ground_truth, [])["mask"]["AP"] == 0.0


def test_eval_takes_class_names_with_periods_case_and_spaces_as_they_are(subset, sam_files, tiny_detector_dir):
    from lang_sam import LangSAM
    from lang_sam.datasets.evaluation import evaluate_pipeline

    folder, _, truth = subset
    renamed = {"dog": "St. Bernard", "person": "Person ", "car": "race  car"}
    dataset = {**truth, "categories": [{**c, "name": renamed.get(c["name"], c["name"])} for c in truth["categories"]]}
    ground_truth = load_ground_truth(dataset)
    model = LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype="float32")
    asked = []
    predict = model.predict
    model.predict = lambda image, **options: asked.append(options["classes"]) or predict(image, **options)
    image_ids = sorted(ground_truth.getImgIds())[:2]
    metrics = evaluate_pipeline(model, ground_truth, folder, image_ids, box_threshold=0.0, text_threshold=0.0, max_detections=5)
    assert "st. bernard" in asked[0] and "person" in asked[0] and "race car" in asked[0] and len(asked) == 2
    assert metrics["predictions"] == 10
    names = {c["name"] for c in dataset["categories"]}
    assert set(metrics["mask"]["per_class"]) <= names and set(metrics["box"]["per_class"]) <= names


@pytest.mark.parametrize(("dataset", "message"), [
    ({"images": "nope", "annotations": [], "categories": []}, "'images' must be a list"),
    ({"images": [{"id": 1}], "annotations": [], "categories": []}, r"images\[0\] must be an object with id, file_name"),
    ({"images": [], "annotations": [{"image_id": 1, "category_id": 9}], "categories": [{"id": 1, "name": "cat"}]}, "not listed: 9"),
    ([1, 2], "top level must be an object"),
])
def test_a_malformed_coco_file_is_a_message_not_a_traceback(dataset, message, tmp_path):
    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps(dataset))
    completed = subprocess.run(
        [sys.executable, "-m", "lang_sam.interfaces.cli", "eval", "--coco", str(coco), "--images", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert re.search(message, completed.stderr), completed.stderr
