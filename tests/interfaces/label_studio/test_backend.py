"""The Label Studio ML backend's protocol, in process, with tiny random models (float32): its brush
masks decoded by label-studio-sdk's own decoder equal LangSAM.predict's masks for the project's
labels; every region carries one of the project's labels; a click equals LangSAM.predict(image,
points=...), and later clicks on the same image decode against its cached embedding; bad configs,
images and bodies are clear error answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("label_studio_sdk")
from label_studio_sdk.converter import brush
from starlette.testclient import TestClient

from lang_sam import LangSAM
from lang_sam.interfaces.label_studio import LabelStudioBackend, model_version
from lang_sam.interfaces.label_studio.app import build_app
from lang_sam.settings import Settings
from lang_sam.vocabulary import Thresholds

ASSETS = Path(__file__).resolve().parents[3] / "assets"
PHOTO = ASSETS / "chelsea.jpg"
# The project of the real Label Studio test too: brush, polygon, rectangle and keypoint controls
# on one image; "Cat" is detected as "a cat" (its hint), "Sofa" by its name.
LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="brush" toName="image"><Label value="Cat" hint="a cat"/><Label value="Sofa"/></BrushLabels>
  <PolygonLabels name="polygon" toName="image"><Label value="Cat"/><Label value="Sofa"/></PolygonLabels>
  <RectangleLabels name="box" toName="image" smart="true"><Label value="Cat"/><Label value="Sofa"/></RectangleLabels>
  <KeyPointLabels name="click" toName="image" smart="true"><Label value="Cat" smart="true"/><Label value="Sofa" smart="true"/></KeyPointLabels>
</View>"""
LABELS = {"Cat", "Sofa"}
THRESHOLDS = Thresholds(box=0.0, text=0.0, max_detections=4)  # the tiny detector's scores are low: take its best four


@pytest.fixture(scope="module")
def settings(sam_files, tiny_detector_dir) -> Settings:
    return Settings(sam_checkpoint=str(sam_files[0]), detector=str(tiny_detector_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def pipeline(settings) -> LangSAM:
    return LangSAM.from_settings(settings)


@pytest.fixture(scope="module")
def backend(pipeline, settings) -> LabelStudioBackend:
    return LabelStudioBackend(pipeline, model_version(settings), THRESHOLDS)


@pytest.fixture(scope="module")
def client(backend) -> TestClient:
    return TestClient(build_app(backend))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))


def predict(client: TestClient, tasks: list[dict], context: dict | None = None, config: str = LABEL_CONFIG):
    body = {"tasks": tasks, "project": "1.1700000000", "label_config": config,
            "params": {"login": None, "password": None, "context": context}}
    return client.post("/predict", json=body)


def decoded(region: dict) -> np.ndarray:
    """A brush region's mask, decoded by label-studio-sdk as Label Studio's converter does."""
    height, width = region["original_height"], region["original_width"]
    return brush.decode_rle(region["value"]["rle"]).reshape(height, width, 4)[:, :, 3] > 0


def of_type(prediction: dict, kind: str) -> list[dict]:
    return [region for region in prediction["result"] if region["type"] == kind]


def test_pre_annotation_masks_are_langsams_for_the_projects_labels(client, pipeline, backend, photo):
    answer = predict(client, [{"id": 7, "data": {"image": str(PHOTO)}}])
    assert answer.status_code == 200, answer.text
    [prediction] = answer.json()["results"]
    expected = pipeline.predict(photo, classes=["a cat", "Sofa"], box_threshold=0.0, text_threshold=0.0, max_detections=4)
    labels = ["Cat", "Sofa"]  # of the classes "a cat", "Sofa", as the class ids index them
    brushes, polygons, boxes = (of_type(prediction, kind) for kind in ("brushlabels", "polygonlabels", "rectanglelabels"))
    assert len(brushes) == len(boxes) == expected.num_detections > 0
    assert all(np.array_equal(decoded(region), mask) for region, mask in zip(brushes, expected.masks))
    assert [region["value"]["brushlabels"] for region in brushes] == [[labels[i]] for i in expected.class_ids]
    assert {label for region in prediction["result"] for label in region["value"][region["type"]]} <= LABELS
    height, width = photo.shape[:2]
    for region, box, score in zip(boxes, expected.boxes, expected.logits):
        value = region["value"]
        assert [value["x"] * width / 100, value["y"] * height / 100, (value["x"] + value["width"]) * width / 100,
                (value["y"] + value["height"]) * height / 100] == pytest.approx(box.tolist(), abs=1e-3)
        assert region["score"] == pytest.approx(float(score))
    for region in polygons:  # each polygon outlines pixels of its object's mask
        index = int(region["id"].rsplit("-", 1)[1])
        corners = np.array(region["value"]["points"]) / 100 * [width, height]
        inside = expected.masks[index][np.clip(corners[:, 1].astype(int), 0, height - 1), np.clip(corners[:, 0].astype(int), 0, width - 1)]
        assert inside.mean() > 0.5 and region["value"]["closed"]
    assert prediction["model_version"] == backend.model_version
    assert prediction["score"] == pytest.approx(float(np.mean([r["score"] for r in prediction["result"]])))


def click(x: float, y: float, size: tuple[int, int], positive: bool = True, label: str = "Sofa") -> dict:
    """A KeyPointLabels click as Label Studio sends it in the interactive context: percent of the image."""
    height, width = size
    return {"from_name": "click", "to_name": "image", "type": "keypointlabels", "is_positive": positive,
            "original_width": width, "original_height": height,
            "value": {"x": x / width * 100, "y": y / height * 100, "width": 0.5, "keypointlabels": [label]}}


def test_clicks_equal_langsam_predict_with_points_and_encode_the_image_once(client, pipeline, photo, monkeypatch):
    pipeline.embeddings.clear()
    encodes = []
    embed = pipeline.segmenter.embed
    monkeypatch.setattr(pipeline.segmenter, "embed", lambda image: encodes.append(1) or embed(image))
    task = {"id": 8, "data": {"image": str(PHOTO)}}
    size = photo.shape[:2]
    first = predict(client, [task], {"result": [click(200, 150, size)]}).json()["results"]
    both = predict(client, [task], {"result": [click(200, 150, size), click(300, 100, size, positive=False)]}).json()["results"]
    assert len(encodes) == 1, "the second request decodes against the first one's embedding"
    expected_first = pipeline.predict(photo, points=[[200, 150]], point_labels=[1], label="Sofa")
    expected_both = pipeline.predict(photo, points=[[200, 150], [300, 100]], point_labels=[1, 0], label="Sofa")
    for [prediction], expected in ((first, expected_first), (both, expected_both)):
        [region] = prediction["result"]
        assert region["type"] == "brushlabels" and region["value"]["brushlabels"] == ["Sofa"]
        assert np.array_equal(decoded(region), expected.masks[0])
        assert region["score"] == pytest.approx(float(expected.mask_scores[0]))
    assert not np.array_equal(decoded(first[0]["result"][0]), decoded(both[0]["result"][0]))


def test_a_drawn_box_with_a_click_is_one_object(client, pipeline, photo):
    height, width = photo.shape[:2]
    box = {"from_name": "box", "to_name": "image", "type": "rectanglelabels", "original_width": width, "original_height": height,
           "value": {"x": 50 / width * 100, "y": 40 / height * 100, "width": 200 / width * 100, "height": 240 / height * 100,
                     "rectanglelabels": ["Cat"]}}
    [prediction] = predict(client, [{"id": 9, "data": {"image": str(PHOTO)}}],
                           {"result": [box, click(120, 150, (height, width), label="Cat")]}).json()["results"]
    expected = pipeline.predict(photo, boxes=[[50, 40, 250, 280]], points=[[120, 150]], point_labels=[1], label="Cat")
    [region] = prediction["result"]
    assert region["value"]["brushlabels"] == ["Cat"] and np.array_equal(decoded(region), expected.masks[0])


def test_a_negative_box_is_a_clear_answer_with_a_model_other_than_sam3(client, photo):
    height, width = photo.shape[:2]
    config = LABEL_CONFIG.replace('<Label value="Sofa"/></RectangleLabels>', '<Label value="Sofa"/><Label value="Negative"/></RectangleLabels>')
    box = {"from_name": "box", "to_name": "image", "type": "rectanglelabels", "original_width": width, "original_height": height,
           "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["Negative"]}}
    answer = predict(client, [{"id": 9, "data": {"image": str(PHOTO)}}], {"result": [box]}, config=config)
    assert answer.status_code == 400 and "only SAM 3 takes" in answer.json()["error"]


def test_protocol_routes_as_label_studio_calls_them(client, backend):
    assert client.get("/health").json()["status"] == "UP"
    setup = client.post("/setup", json={"project": "3.1700000000", "schema": LABEL_CONFIG, "hostname": "http://127.0.0.1:1",
                                        "access_token": "abc", "extra_params": None})
    assert setup.status_code == 200 and setup.json() == {"model_version": backend.model_version}
    assert backend.model_version.startswith("lang-sam tiny_sam_a.pth+") and len(backend.model_version.rsplit(" ", 1)[1]) == 12
    webhook = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 1}})
    assert webhook.status_code == 200


def test_the_model_version_tells_other_weights_apart(sam_files, tiny_detector_dir, settings):
    other = Settings(sam_checkpoint=str(sam_files[1]), detector=str(tiny_detector_dir), device="cpu", dtype="float32")
    assert model_version(settings).rsplit(" ", 1)[0] == model_version(other).rsplit(" ", 1)[0], "the same names"
    assert model_version(settings) != model_version(other) and model_version(settings) == model_version(settings)


def test_bad_configs_images_and_bodies_are_clear_answers(client, tmp_path):
    no_output = predict(client, [{"id": 1, "data": {"image": str(PHOTO)}}],
                        config='<View><Image name="image" value="$image"/><Choices name="c" toName="image"><Choice value="a"/></Choices></View>')
    assert no_output.status_code == 422 and "BrushLabels, PolygonLabels or RectangleLabels" in no_output.json()["error"]
    broken = predict(client, [{"id": 1, "data": {"image": str(PHOTO)}}], config="<View><Image")
    assert broken.status_code == 422 and "could not be read" in broken.json()["error"]
    setup = client.post("/setup", json={"project": "1.1", "schema": "<View></View>"})
    assert setup.status_code == 422 and "BrushLabels" in setup.json()["error"]
    (tmp_path / "not-an-image.jpg").write_text("hello")
    tasks = [{"id": 1, "data": {"image": "http://127.0.0.1:1/missing.jpg"}}, {"id": 2, "data": {"image": "/data/upload/1/x.jpg"}},
             {"id": 3, "data": {"image": str(tmp_path / "not-an-image.jpg")}}, {"id": 4, "data": {"photo": "x"}},
             {"id": 5, "data": {"image": str(PHOTO)}}]
    answer = predict(client, tasks)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert "Task 1's image http://127.0.0.1:1/missing.jpg could not be fetched" in results[0]["error"]
    assert "LABEL_STUDIO_URL" in results[1]["error"] and "Task 3's image" in results[2]["error"]
    assert "data['image']" in results[3]["error"] and results[4]["result"], "the good task is answered"
    assert client.post("/predict", content=b"not json").status_code == 400
    assert predict(client, []).status_code == 422
    no_click = predict(client, [{"id": 5, "data": {"image": str(PHOTO)}}], {"result": [{"type": "choices", "value": {}}]})
    assert no_click.status_code == 400 and "KeyPointLabels" in no_click.json()["error"]
    outside = predict(client, [{"id": 5, "data": {"image": str(PHOTO)}}], {"result": [click(5000, 10, (300, 451))]})
    assert outside.status_code == 400 and "outside" in outside.json()["error"]


def test_sam3_takes_the_labels_as_text_with_no_detector(tmp_path, photo):
    from tests.conftest import byte_level_clip_tokenizer
    from tests.families.test_sam3 import IMAGE_SIZE, TEXT_TOKENS, random_sam3, sam3_processor, tiny_sam3_config

    tokenizer = byte_level_clip_tokenizer(TEXT_TOKENS)
    random_sam3(tiny_sam3_config(len(tokenizer))).save_pretrained(tmp_path)
    sam3_processor(tokenizer, IMAGE_SIZE).save_pretrained(tmp_path)
    settings = Settings(sam_checkpoint=str(tmp_path), detector="no-such-detector", device="cpu", dtype="float32")
    pipeline = LangSAM.from_settings(settings)  # a detector named but never loaded: SAM 3 takes the text
    thresholds = Thresholds(box=0.0, max_detections=3)
    client = TestClient(build_app(LabelStudioBackend(pipeline, model_version(settings), thresholds)))
    [prediction] = predict(client, [{"id": 1, "data": {"image": str(PHOTO)}}]).json()["results"]
    expected = pipeline.predict(photo, classes=["a cat", "Sofa"], box_threshold=0.0, max_detections=3)
    brushes = of_type(prediction, "brushlabels")
    assert len(brushes) == expected.num_detections == 3
    assert all(np.array_equal(decoded(region), mask) for region, mask in zip(brushes, expected.masks))
    assert [region["value"]["brushlabels"] for region in brushes] == [[["Cat", "Sofa"][i]] for i in expected.class_ids]
    assert "+" not in prediction["model_version"], "no detector in the model version"


def test_each_labels_words_come_from_the_mapping_its_hint_or_its_predicted_values():
    from lang_sam.errors import InvalidOptionError
    from lang_sam.interfaces.label_studio.config import LabelConfigError, ProjectConfig, read_label_prompts

    xml = LABEL_CONFIG.replace('<Label value="Sofa"/></BrushLabels>', '<Label value="Sofa" predicted_values="couch, sofa"/></BrushLabels>')
    config = ProjectConfig.parse(xml)
    assert config.classes == ["a cat", "couch", "sofa"] and config.labels == ("Cat", "Sofa") and config.image_key == "image"
    assert config.labels_of(["SOFA", "a cat", "couch"]) == ["Sofa", "Cat", "Sofa"], "detectors lower the classes"
    assert [c.tag for c in config.outputs] == ["BrushLabels", "PolygonLabels", "RectangleLabels"]
    assert config.prompt_controls == {"box", "click"} and config.mask_output.name == "brush"
    mapped = ProjectConfig.parse(xml, read_label_prompts('{"Cat": ["kitten", "cat"]}'))
    assert mapped.classes == ["kitten", "cat", "couch", "sofa"]
    with pytest.raises(InvalidOptionError, match="JSON object of label"):
        read_label_prompts('["Cat"]')
    with pytest.raises(LabelConfigError, match="empty text prompt"):
        ProjectConfig.parse(xml, {"Cat": " "})


def test_bad_flags_stop_before_any_model_loads(tmp_path, capsys):
    from lang_sam.interfaces.cli import main

    assert main(["label-studio", "--label-prompts", '["Cat"]', "--sam-type", "vit_b"]) == 2
    assert "JSON object of label" in capsys.readouterr().err
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photos" / "a.png")
    (tmp_path / "config.xml").write_text(LABEL_CONFIG)
    label = ["label", str(tmp_path / "photos"), "--out", str(tmp_path / "out"), "--sam-type", "vit_b"]
    assert main([*label, "--classes", "cat", "--label-studio-config", str(tmp_path / "config.xml")]) == 2
    assert "shape the --label-studio OUT.json file" in capsys.readouterr().err
    assert main([*label, "--classes", "dog", "--label-studio", str(tmp_path / "t.json"),
                 "--label-studio-config", str(tmp_path / "config.xml")]) == 2
    assert "no label for dog" in capsys.readouterr().err and not (tmp_path / "out").exists()
