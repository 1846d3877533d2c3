"""SAM 3's exemplar boxes ("more like this one", positive or negative, with text or alone) through
lang_sam.families.sam3, LangSAM.predict, ``lang-sam predict --exemplar`` and the server's fields: each
equal, in float32, to Sam3Model and Sam3Processor called directly the documented way on the same tiny
random weights and boxes; bad exemplars are errors that name the problem."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from lang_sam.errors import InvalidPromptError
from lang_sam.families.sam3 import Sam3TextSegmenter
from lang_sam.vocabulary import Exemplars
from tests.families.test_sam3 import direct, images, sam3_dir  # noqa: F401 - the tiny SAM 3's fixtures

# Boxes on coffee.jpg (600 x 400): an example and a counter-example.
EXAMPLE = [130.0, 60.0, 330.0, 230.0]
COUNTER = [20.0, 180.0, 140.0, 290.0]


def direct_instances(direct, image: np.ndarray, text: str | None, boxes: list, labels: list, threshold: float):
    """Sam3Model on the image with the text (None: the boxes alone) and labelled boxes, its
    post-processing at threshold, sorted by score: (boxes, scores, masks)."""
    model, processor = direct
    inputs = processor(images=Image.fromarray(image), text=text, input_boxes=[boxes], input_boxes_labels=[labels],
                       return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    found = processor.post_process_instance_segmentation(
        outputs, threshold=threshold, mask_threshold=0.5, target_sizes=inputs["original_sizes"].tolist())[0]
    order = torch.argsort(found["scores"], descending=True, stable=True)
    height, width = image.shape[:2]
    boxes = found["boxes"][order].clone()
    boxes[:, 0::2], boxes[:, 1::2] = boxes[:, 0::2].clamp(0, width), boxes[:, 1::2].clamp(0, height)
    return boxes.numpy(), found["scores"][order].numpy(), found["masks"][order].bool().numpy()


def median_score(direct, image, text, boxes, labels) -> float:
    """A threshold that keeps about half of the queries: the median of every query's score, set
    midway between two neighbouring scores so float rounding cannot move one across it."""
    scores = np.sort(direct_instances(direct, image, text, boxes, labels, 0.0)[1])
    middle = len(scores) // 2
    return float(scores[middle - 1] + scores[middle]) / 2


def assert_equal_to_direct(found, expected) -> None:
    boxes, scores, masks = expected
    assert len(found) == len(scores)
    np.testing.assert_allclose(found.box_scores, scores, rtol=0, atol=1e-5)
    np.testing.assert_allclose(found.xyxy, boxes, rtol=0, atol=1e-4)
    assert np.array_equal(found.masks, masks)


@pytest.fixture(scope="module")
def segmenter(sam3_dir):
    return Sam3TextSegmenter(sam3_dir, device="cpu", dtype="float32")


@pytest.mark.parametrize("text", ["cup", None], ids=["with text", "boxes alone"])
def test_exemplars_equal_sam3_model_called_directly_and_find_more_than_the_boxed_objects(segmenter, direct, images, text):
    image, boxes, labels = images[0], [EXAMPLE, COUNTER], [1, 0]
    threshold = median_score(direct, image, text, boxes, labels)
    found = segmenter.segment_text([image], [[text] if text else []], box_threshold=threshold,
                                   exemplars=[Exemplars(np.array(boxes), np.array(labels))])[0]
    assert_equal_to_direct(found, direct_instances(direct, image, text, boxes, labels, threshold))
    assert found.classes == ((text,) if text else ("visual",)) and set(found.class_ids.tolist()) == {0}
    assert len(found) > 1, "every instance the model scores above the threshold, not only the one boxed"


def test_a_negative_exemplar_reaches_the_model_as_label_0(segmenter, direct, images):
    """With random weights no box means "cup", so what a counter-example removes cannot be judged by
    eye; what can be shown is that its label reaches SAM 3 as 0: equal to Sam3Model given label 0,
    and unlike (by more than ten times the parity tolerance) Sam3Model given the same box as an example."""
    image, boxes = images[0], [EXAMPLE, COUNTER]
    threshold = median_score(direct, image, "cup", boxes, [1, 0])
    found = segmenter.segment_text([image], [["cup"]], box_threshold=threshold,
                                   exemplars=[Exemplars.of([EXAMPLE], [COUNTER])])[0]
    assert_equal_to_direct(found, direct_instances(direct, image, "cup", boxes, [1, 0], threshold))
    as_example = direct_instances(direct, image, "cup", boxes, [1, 1], threshold)[1]
    assert len(as_example) != len(found) or np.abs(as_example - found.box_scores).max() > 1e-4


def test_langsam_predict_takes_exemplars_with_a_prompt_or_alone(sam3_dir, segmenter, images, tmp_path):
    from lang_sam import LangSAM

    model = LangSAM(sam_checkpoint=sam3_dir, detector=tmp_path / "never-loaded", device="cpu", dtype="float32")
    image = images[0]
    expected = segmenter.segment_text([image], [["cup"]], box_threshold=0.0, exemplars=[Exemplars.of([EXAMPLE], [COUNTER])])[0]
    result = model.predict(image, "cup", box_threshold=0.0, exemplars=[EXAMPLE], negative_exemplars=[COUNTER])
    assert result.classes == ["cup"] and np.array_equal(result.masks, expected.masks)
    np.testing.assert_array_equal(result.boxes, expected.xyxy)
    alone = segmenter.segment_text([image], [[]], box_threshold=0.0, exemplars=[Exemplars.of([EXAMPLE])])[0]
    named = model.predict(image, exemplars=[EXAMPLE], box_threshold=0.0, max_detections=3, label="mug")
    assert named.classes == ["mug"] and named.phrases == ["mug"] * 3
    assert np.array_equal(named.masks, alone.masks[:3]) and np.array_equal(named.mask_scores, alone.mask_scores[:3])


def test_lang_sam_predict_exemplar_flags_write_what_the_library_returns(sam3_dir, images, tmp_path):
    from lang_sam import LangSAM
    from lang_sam.interfaces.cli import main

    photo = tmp_path / "coffee.png"
    Image.fromarray(images[0]).save(photo)
    code = main(["predict", str(photo), "--prompt", "cup", "--exemplar", ",".join(map(str, EXAMPLE)),
                 "--negative-exemplar", ",".join(map(str, COUNTER)), "--sam-checkpoint", str(sam3_dir),
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--dtype", "float32", "--box-threshold", "0.05"])
    assert code == 0
    written = json.loads((tmp_path / "out" / "coffee.json").read_text())
    expected = LangSAM(sam_checkpoint=sam3_dir, device="cpu", dtype="float32").predict(
        images[0], "cup", box_threshold=0.05, exemplars=[EXAMPLE], negative_exemplars=[COUNTER])
    assert written["detections"] == expected.to_json()["detections"] and len(expected.boxes) > 0


def test_the_servers_exemplar_fields_answer_what_the_library_returns(sam3_dir, images, tmp_path):
    import shutil

    from lang_sam import LangSAM
    from lang_sam.interfaces.limits import Limits
    from lang_sam.interfaces.models import ModelPool
    from lang_sam.interfaces.server.api import EmbeddingStore, predict_batch
    from lang_sam.interfaces.server.validation import parse_request
    from lang_sam.settings import Settings

    shutil.copytree(sam3_dir, tmp_path / "checkpoints" / "tiny-sam3")
    pool = ModelPool(Settings(sam_type="tiny-sam3", device="cpu", dtype="float32", checkpoint_dir=str(tmp_path / "checkpoints")))
    buffer = io.BytesIO()
    Image.fromarray(images[0]).save(buffer, format="PNG")
    payload = {"image": base64.b64encode(buffer.getvalue()).decode(), "prompt": "cup", "box_threshold": 0.05,
               "exemplars": [EXAMPLE], "negative_exemplars": ",".join(map(str, COUNTER))}
    request = parse_request(payload, "tiny-sam3", Limits(), check_sam=str)
    (_, answer, _), = predict_batch(pool, [request], EmbeddingStore(tmp_path / "store"))
    expected = LangSAM(sam_checkpoint=sam3_dir, device="cpu", dtype="float32").predict(
        images[0], "cup", box_threshold=0.05, exemplars=[EXAMPLE], negative_exemplars=[COUNTER])
    assert answer.to_json() == expected.to_json() and len(expected.boxes) > 0
    decode = {"mode": "decode", "image_id": "0" * 32, "boxes": [EXAMPLE], "exemplars": [EXAMPLE]}
    with pytest.raises(InvalidPromptError, match="POST them to /predict"):
        parse_request(decode, "tiny-sam3", Limits(), check_sam=str)


@pytest.mark.parametrize(("exemplars", "negative", "message"), [
    ([[100, 10, 700, 100]], None, r"exemplar box corner \[700.0, 100.0\] is outside the 600x400 image"),
    ([[1, 2, 3]], None, r"exemplars must be \(M, 4\) x1, y1, x2, y2 in pixels, got shape \(1, 3\)"),
    ([[50, 50, 10, 60]], None, "x2 < x1"),
    ([["a", 1, 2, 3]], None, "exemplars must be numbers"),
    ([[1, 2, float("nan"), 4]], None, "finite"),
    (None, [COUNTER], "Negative exemplars alone show nothing to look for"),
])
def test_bad_exemplars_are_errors_naming_the_problem(sam3_dir, images, tmp_path, exemplars, negative, message):
    from lang_sam import LangSAM

    model = LangSAM(sam_checkpoint=sam3_dir, detector=tmp_path / "never-loaded", device="cpu", dtype="float32")
    with pytest.raises(InvalidPromptError, match=message):
        model.predict(images[0], exemplars=exemplars, negative_exemplars=negative)


def test_exemplars_go_with_one_class_one_image_and_sam3_only(sam3_dir, segmenter, images, tmp_path):
    from lang_sam import LangSAM
    from lang_sam.families.loading import load_segmenter
    from tests.families.conftest import save_tiny_segmenter

    model = LangSAM(sam_checkpoint=sam3_dir, detector=tmp_path / "never-loaded", device="cpu", dtype="float32")
    with pytest.raises(InvalidPromptError, match="one class name with them.*got 2: cup, saucer"):
        model.predict(images[0], "cup, saucer", exemplars=[EXAMPLE])
    with pytest.raises(InvalidPromptError, match="for one image"):
        model.predict(images, ["cup", "cat"], exemplars=[EXAMPLE])
    with pytest.raises(InvalidPromptError, match="one \\(or None\\) per image"):
        segmenter.segment_text(images, [["cup"], ["cat"]], exemplars=[Exemplars.of([EXAMPLE])])
    with pytest.raises(InvalidPromptError, match="lang_sam.vocabulary.Exemplars"):
        segmenter.segment_text(images[:1], [["cup"]], exemplars=[[EXAMPLE]])
    sam2 = LangSAM.from_parts(load_segmenter(None, save_tiny_segmenter("sam2", tmp_path / "sam2"), "cpu", "float32"), None)
    with pytest.raises(InvalidPromptError, match="takes no exemplar boxes; SAM 3 does"):
        sam2.predict(images[0], exemplars=[EXAMPLE])


def test_exemplars_of_joins_examples_then_counter_examples():
    both = Exemplars.of(np.array([EXAMPLE, EXAMPLE]), [COUNTER])
    assert both.boxes.shape == (3, 4) and both.labels.tolist() == [1, 1, 0] and both.has_example
    assert Exemplars.of(None, []) is None and not Exemplars.of(None, [COUNTER]).has_example
    with pytest.raises(InvalidPromptError, match="one label"):
        Exemplars(np.array([EXAMPLE]), np.array([2]))
