"""SAM 3's exemplar boxes through the Label Studio backend, with a tiny random SAM 3 in float32: the
annotator's RectangleLabels boxes in an interactive request are "more like this" exemplars of
their label's concept (a box labelled "Negative" a counter-example), and the answer's brush masks,
decoded by label-studio-sdk's own decoder, equal LangSAM.predict(image, the label's words,
exemplars=..., negative_exemplars=...); every region carries that project label; bad boxes are
clear error answers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("label_studio_sdk")
from starlette.testclient import TestClient

from lang_sam import LangSAM
from lang_sam.interfaces.label_studio import LabelStudioBackend, model_version
from lang_sam.interfaces.label_studio.app import build_app
from lang_sam.interfaces.label_studio.config import ProjectConfig
from lang_sam.settings import Settings
from lang_sam.vocabulary import Thresholds
from tests.families.test_sam3 import direct, sam3_dir  # noqa: F401 - the tiny SAM 3's fixtures
from tests.families.test_sam3_exemplars import direct_instances
from tests.interfaces.label_studio.test_backend import LABEL_CONFIG, PHOTO, click, decoded, of_type, photo, predict  # noqa: F401

# The shared project with a counter-example label on its box tool: "Negative" marks a box as "not this".
CONFIG = LABEL_CONFIG.replace('<Label value="Sofa"/></RectangleLabels>', '<Label value="Sofa"/><Label value="Negative"/></RectangleLabels>')
THRESHOLDS = Thresholds(box=0.0, max_detections=3)
TASK = {"id": 1, "data": {"image": str(PHOTO)}}
# Boxes on chelsea.jpg (451 x 300): an example and a counter-example.
EXAMPLE = [60.0, 40.0, 260.0, 280.0]
COUNTER = [300.0, 20.0, 440.0, 150.0]


@pytest.fixture(scope="module")
def pipeline(sam3_dir) -> LangSAM:  # noqa: F811 - the imported fixture
    return LangSAM.from_settings(Settings(sam_checkpoint=str(sam3_dir), device="cpu", dtype="float32"))


@pytest.fixture(scope="module")
def client(pipeline, sam3_dir) -> TestClient:  # noqa: F811
    settings = Settings(sam_checkpoint=str(sam3_dir), device="cpu", dtype="float32")
    return TestClient(build_app(LabelStudioBackend(pipeline, model_version(settings), THRESHOLDS)))


def box(xyxy: list[float], size: tuple[int, int], *labels: str) -> dict:
    """A RectangleLabels box as Label Studio sends it in the interactive context: percent of the image."""
    height, width = size
    x0, y0, x1, y1 = xyxy
    return {"from_name": "box", "to_name": "image", "type": "rectanglelabels", "original_width": width, "original_height": height,
            "value": {"x": x0 / width * 100, "y": y0 / height * 100, "width": (x1 - x0) / width * 100,
                      "height": (y1 - y0) / height * 100, "rectanglelabels": list(labels)}}


def ask(client: TestClient, *regions: dict):
    return predict(client, [TASK], {"result": list(regions)}, config=CONFIG)


@pytest.mark.parametrize("counter", [False, True], ids=["example", "example and counter-example"])
def test_exemplar_boxes_answer_every_instance_of_the_labels_concept(client, pipeline, direct, photo, counter):  # noqa: F811
    size = photo.shape[:2]
    regions = [box(EXAMPLE, size, "Cat")] + ([box(COUNTER, size, "Negative")] if counter else [])
    answer = ask(client, *regions)
    assert answer.status_code == 200, answer.text
    [prediction] = answer.json()["results"]
    expected = pipeline.predict(photo, "a cat", exemplars=[EXAMPLE], negative_exemplars=[COUNTER] if counter else None,
                                box_threshold=0.0, max_detections=3)
    brushes, polygons, rectangles = (of_type(prediction, kind) for kind in ("brushlabels", "polygonlabels", "rectanglelabels"))
    assert len(brushes) == len(rectangles) == expected.num_detections == 3, "every instance, not only the boxed one"
    assert all(np.array_equal(decoded(region), mask) for region, mask in zip(brushes, expected.masks))
    assert [region["score"] for region in brushes] == pytest.approx(expected.detections.box_scores.tolist(), abs=1e-6)
    boxes, labels = [EXAMPLE] + ([COUNTER] if counter else []), [1] + ([0] if counter else [])
    _, scores, masks = direct_instances(direct, photo, "a cat", boxes, labels, 0.0)  # Sam3Model itself: its best three
    assert [region["score"] for region in brushes] == pytest.approx(scores[:3].tolist(), abs=1e-5)
    assert all(np.array_equal(decoded(region), mask) for region, mask in zip(brushes, masks[:3]))
    height, width = size
    for region, xyxy in zip(rectangles, expected.boxes):
        value = region["value"]
        assert [value["x"] * width / 100, value["y"] * height / 100, (value["x"] + value["width"]) * width / 100,
                (value["y"] + value["height"]) * height / 100] == pytest.approx(xyxy.tolist(), abs=1e-3)
    assert {label for region in prediction["result"] for label in region["value"][region["type"]]} == {"Cat"}
    assert polygons and all(region["value"]["polygonlabels"] == ["Cat"] for region in polygons)


def test_a_counter_example_changes_the_answer(client, photo):  # noqa: F811
    size = photo.shape[:2]
    alone = ask(client, box(EXAMPLE, size, "Cat")).json()["results"][0]
    countered = ask(client, box(EXAMPLE, size, "Cat"), box(COUNTER, size, "Negative")).json()["results"][0]
    assert [r["score"] for r in of_type(alone, "brushlabels")] != pytest.approx([r["score"] for r in of_type(countered, "brushlabels")])


def test_the_negative_label_is_no_text_prompt_and_no_answer_label():
    config = ProjectConfig.parse(CONFIG)
    assert config.labels == ("Cat", "Sofa") and config.classes == ["a cat", "Sofa"]
    assert "box" in config.prompt_controls


def test_bad_exemplar_boxes_are_clear_answers(client, photo):  # noqa: F811
    size = photo.shape[:2]
    cases = [
        ((box(COUNTER, size, "Negative"),), "one label's concept"),
        ((box(EXAMPLE, size, "Cat"), box(COUNTER, size, "Sofa")), "one label's concept"),
        ((box([60.0, 40.0, 600.0, 280.0], size, "Cat"),), "outside"),
        ((box(EXAMPLE, size, "Cat"), click(120, 150, size, label="Cat")), "one or the other"),
        ((box(EXAMPLE, size, "Dog"),), "not one of the project's labels"),
    ]
    for regions, message in cases:
        answer = ask(client, *regions)
        assert answer.status_code == 400 and message in answer.json()["error"], answer.text
