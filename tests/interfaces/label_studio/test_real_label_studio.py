"""lang-sam's backend driven by a real Label Studio (conftest.py): a project with brush, polygon,
rectangle and keypoint controls, the shared photos uploaded as tasks (read back by the backend
through Label Studio's /data/upload with the access token), the backend connected, predictions
asked for and read back from Label Studio, their brush masks decoded by Label Studio's own
label-studio-sdk (in its virtualenv) and compared with LangSAM.predict's in float32; an
interactive click through Label Studio equal to LangSAM.predict(image, points=...)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lang_sam import LangSAM
from tests.interfaces.label_studio.conftest import SHARED_PHOTOS, TOKEN
from tests.interfaces.label_studio.test_backend import LABEL_CONFIG, LABELS
from tests.services import free_port, start_service, stop_session

ROOT = Path(__file__).resolve().parents[3]  # the checkout whose lang_sam the backend runs
PHOTOS = ["dog.jpg", "groceries.jpg"]
CLASSES = ["a cat", "Sofa"]  # the config's prompts: Cat's hint, Sofa's name
OPTIONS = {"box_threshold": 0.0, "text_threshold": 0.0, "max_detections": 3}


@pytest.fixture(scope="module")
def backend_url(label_studio, sam_files, tiny_detector_dir, tmp_path_factory):
    """`lang-sam label-studio` on the tiny models, reading Label Studio's files with its token."""
    port = free_port()
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "label-studio", "--port", str(port),
               "--sam-checkpoint", str(sam_files[0]), "--detector", str(tiny_detector_dir), "--device", "cpu",
               "--dtype", "float32", "--box-threshold", "0", "--text-threshold", "0", "--max-detections", "3",
               "--label-studio-url", label_studio.url, "--label-studio-api-key", TOKEN]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    log = tmp_path_factory.mktemp("backend") / "backend.log"
    process = start_service(command, environment, f"http://127.0.0.1:{port}/health", log)
    yield f"http://127.0.0.1:{port}"
    stop_session(process)


@pytest.fixture(scope="module")
def pipeline(sam_files, tiny_detector_dir) -> LangSAM:
    return LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def project(label_studio, backend_url) -> dict:
    """A project with the photos uploaded and the backend connected (interactive): its id, its
    tasks (file name -> task) and the ML backend's id."""
    client = label_studio.client
    created = client.post("/api/projects/", json={"title": "lang-sam backend", "label_config": LABEL_CONFIG})
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    files = {name: (name, (SHARED_PHOTOS / name).read_bytes(), "image/jpeg") for name in PHOTOS}
    imported = client.post(f"/api/projects/{project_id}/import", files=files)
    assert imported.status_code == 201 and imported.json()["task_count"] == len(PHOTOS), imported.text
    tasks = client.get("/api/tasks/", params={"project": project_id}).json()["tasks"]
    by_name = {next(name for name in PHOTOS if task["data"]["image"].endswith(name)): task for task in tasks}
    assert all(task["data"]["image"].startswith("/data/upload/") for task in tasks), "served by Label Studio"
    connected = client.post("/api/ml/", json={"url": backend_url, "project": project_id, "is_interactive": True, "title": "lang-sam"})
    assert connected.status_code == 201 and connected.json()["readable_state"] == "Connected", connected.text
    return {"id": project_id, "tasks": by_name, "ml": connected.json()["id"], "model_version": connected.json()["model_version"]}


def decode_in_label_studio(label_studio, regions: list[dict]) -> list[np.ndarray]:
    """The brush regions' masks, decoded by the label-studio-sdk that Label Studio itself runs."""
    script = ("import json, sys, numpy as np\nfrom label_studio_sdk.converter.brush import decode_rle\n"
              "regions = json.load(sys.stdin)\n"
              "masks = [decode_rle(r['value']['rle']).reshape(r['original_height'], r['original_width'], 4)[:, :, 3] > 0 for r in regions]\n"
              "np.save(sys.stdout.buffer, np.stack(masks))\n")
    decoded = subprocess.run([str(label_studio.python), "-c", script], input=json.dumps(regions).encode(), capture_output=True, check=True)
    return list(np.load(io.BytesIO(decoded.stdout)))


def photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(SHARED_PHOTOS / name).convert("RGB"))


def test_predictions_read_back_from_label_studio_are_langsams_masks(label_studio, project, pipeline):
    client = label_studio.client
    asked = client.post("/api/dm/actions/", params={"id": "retrieve_tasks_predictions", "project": project["id"]},
                        json={"selectedItems": {"all": True, "excluded": []}})
    assert asked.status_code == 200, asked.text
    for name, task in project["tasks"].items():
        [prediction] = client.get("/api/predictions/", params={"task": task["id"]}).json()
        assert prediction["model_version"] == project["model_version"] and prediction["model_version"].startswith("lang-sam tiny_sam_a.pth+")
        expected = pipeline.predict(photo(name), classes=CLASSES, **OPTIONS)
        brushes = [region for region in prediction["result"] if region["type"] == "brushlabels"]
        assert len(brushes) == expected.num_detections == 3
        masks = decode_in_label_studio(label_studio, brushes)
        assert all(np.array_equal(mask, wanted) for mask, wanted in zip(masks, expected.masks)), name
        assert [region["value"]["brushlabels"] for region in brushes] == [[["Cat", "Sofa"][i]] for i in expected.class_ids]
        assert {label for region in prediction["result"] for label in region["value"][region["type"]]} <= LABELS
        assert {region["type"] for region in prediction["result"]} == {"brushlabels", "polygonlabels", "rectanglelabels"}
        assert prediction["score"] == pytest.approx(float(np.mean([region["score"] for region in prediction["result"]])))


def test_a_click_through_label_studio_equals_langsam_predict_with_points(label_studio, project, pipeline):
    name = PHOTOS[0]
    height, width = photo(name).shape[:2]
    click = {"from_name": "click", "to_name": "image", "type": "keypointlabels", "is_positive": True,
             "original_width": width, "original_height": height,
             "value": {"x": 40.0, "y": 55.0, "width": 0.6, "keypointlabels": ["Sofa"]}}
    answer = label_studio.client.post(f"/api/ml/{project['ml']}/interactive-annotating",
                                      json={"task": project["tasks"][name]["id"], "context": {"result": [click]}})
    assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
    [region] = answer.json()["data"]["result"]
    expected = pipeline.predict(photo(name), points=[[40.0 / 100 * width, 55.0 / 100 * height]], point_labels=[1], label="Sofa")
    [mask] = decode_in_label_studio(label_studio, [region])
    assert region["value"]["brushlabels"] == ["Sofa"] and np.array_equal(mask, expected.masks[0])


@pytest.fixture(scope="module")
def import_file(sam_files, tiny_detector_dir, tmp_path_factory) -> tuple[Path, Path]:
    """`lang-sam label PHOTOS --label-studio OUT.json` on the project's config: (OUT.json, the run's folder)."""
    from lang_sam.interfaces.cli import main

    if not SHARED_PHOTOS.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_PHOTOS}")
    folder = tmp_path_factory.mktemp("label-studio-import")
    (folder / "photos").mkdir()
    for name in PHOTOS:
        (folder / "photos" / name).symlink_to(SHARED_PHOTOS / name)
    (folder / "config.xml").write_text(LABEL_CONFIG)
    code = main(["label", str(folder / "photos"), "--classes", ", ".join(CLASSES), "--out", str(folder / "out"),
                 "--label-studio", str(folder / "tasks.json"), "--label-studio-config", str(folder / "config.xml"),
                 "--sam-checkpoint", str(sam_files[0]), "--detector", str(tiny_detector_dir), "--device", "cpu",
                 "--dtype", "float32", "--box-threshold", "0", "--text-threshold", "0", "--max-detections", "3"])
    assert code == 0
    return folder / "tasks.json", folder / "out"


def test_the_import_file_holds_the_coco_runs_masks_as_the_projects_labels(import_file, sam_files, tiny_detector_dir):
    from lang_sam.interfaces.label_studio import model_version
    from lang_sam.results import decode_rle
    from lang_sam.settings import Settings
    from tests.interfaces.label_studio.test_backend import decoded

    tasks_path, out = import_file
    tasks = json.loads(tasks_path.read_text())
    coco = json.loads((out / "annotations.json").read_text())
    names = {category["id"]: category["name"] for category in coco["categories"]}
    settings = Settings(sam_checkpoint=str(sam_files[0]), detector=str(tiny_detector_dir), device="cpu", dtype="float32")
    assert [task["data"]["image"] for task in tasks] == [f"/data/local-files/?d=photos/{name}" for name in sorted(PHOTOS)]
    for task, image in zip(tasks, sorted(coco["images"], key=lambda image: image["file_name"])):
        [prediction] = task["predictions"]
        assert prediction["model_version"] == model_version(settings)
        annotations = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        brushes = [region for region in prediction["result"] if region["type"] == "brushlabels"]
        assert len(brushes) == len(annotations) == 3
        for region, annotation in zip(brushes, annotations):
            mask = decode_rle({"size": annotation["segmentation"]["size"], "counts": annotation["segmentation"]["counts"]})
            assert np.array_equal(decoded(region), mask)
            assert region["value"]["brushlabels"] == [{"a cat": "Cat", "sofa": "Sofa"}[names[annotation["category_id"]]]]


def test_the_import_file_reads_back_equal_from_label_studio(label_studio, import_file):
    tasks = json.loads(import_file[0].read_text())
    client = label_studio.client
    project_id = client.post("/api/projects/", json={"title": "lang-sam import", "label_config": LABEL_CONFIG}).json()["id"]
    imported = client.post(f"/api/projects/{project_id}/import", json=tasks)
    assert imported.status_code == 201 and imported.json()["prediction_count"] == len(tasks), imported.text
    stored = client.get("/api/tasks/", params={"project": project_id}).json()["tasks"]
    for task in tasks:
        [match] = [s for s in stored if s["data"] == task["data"]]
        [prediction] = client.get("/api/predictions/", params={"task": match["id"]}).json()
        [expected] = task["predictions"]
        assert prediction["result"] == expected["result"]
        assert prediction["model_version"] == expected["model_version"] and prediction["score"] == pytest.approx(expected["score"])


def test_images_are_read_with_a_personal_access_token_too(label_studio, project):
    from lang_sam.interfaces.label_studio.files import LabelStudioAccess, load_task_image

    created = label_studio.client.post("/api/token/")
    assert created.status_code == 201, created.text
    access = LabelStudioAccess(label_studio.url, created.json()["token"])  # a JWT refresh token, as the UI gives one
    name = PHOTOS[1]
    assert np.array_equal(load_task_image(project["tasks"][name], "image", access), photo(name))
    refused = LabelStudioAccess(label_studio.url, "not-a-token")
    with pytest.raises(Exception, match="could not be fetched"):
        load_task_image(project["tasks"][name], "image", refused)
