"""Your own prompts in LangSAM.predict: clicks and boxes, with or without text, refinement with a
previous mask; each checked against SamPredictor called directly with the same prompt."""

from __future__ import annotations

import numpy as np
import torch
import pytest
from PIL import Image

from lang_sam import LangSAM
from lang_sam.errors import InvalidOptionError, InvalidPromptError, LangSAMError
from lang_sam.results import LangSAMResult
from lang_sam.segmenter import SamPredictor
from tests.detector.test_grounding_dino import ASSETS


@pytest.fixture(scope="module")
def model(sam_files, tiny_detector_dir):
    return LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def photo():
    return np.asarray(Image.open(ASSETS / "chelsea.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def predictor(model, photo):
    predictor = SamPredictor(model.sam)
    predictor.set_image(photo)
    return predictor


def best(masks, scores, low_res):
    index = int(np.argmax(scores))
    return masks[index], scores[index], low_res[index]


def test_a_click_alone_is_the_best_of_sams_three_masks(model, photo, predictor):
    result = model.predict(photo, points=[[200, 150]])
    mask, score, low_res = best(*predictor.predict(point_coords=np.array([[200, 150]]), point_labels=np.array([1])))
    assert result.phrases == ["object"] and result.logits.tolist() == [1.0] and result.classes == ["object"]
    assert np.array_equal(result.masks[0], mask) and result.mask_scores[0] == pytest.approx(score, abs=1e-6)
    rows, columns = np.nonzero(mask)
    assert result.boxes[0].tolist() == [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
    # refine: a background click and the previous low-res mask (SAM's single-mask output, as for >1 point)
    refined = model.predict(photo, points=[[200, 150], [300, 100]], point_labels=[1, 0], mask_input=result.low_res_logits[0])
    masks, scores, _ = predictor.predict(point_coords=np.array([[200, 150], [300, 100]]), point_labels=np.array([1, 0]),
                                         mask_input=low_res[None], multimask_output=False)
    assert np.array_equal(refined.masks[0], masks[0]) and not np.array_equal(refined.masks[0], result.masks[0])


def test_boxes_alone_and_multimask_candidates(model, photo, predictor):
    boxes = [[50, 40, 250, 280], [200, 20, 440, 200]]
    result = model.predict(photo, boxes=boxes, label="thing")
    expected = [predictor.predict(box=np.array(box), multimask_output=False)[0][0] for box in boxes]
    assert result.phrases == ["thing", "thing"] and all(np.array_equal(m, e) for m, e in zip(result.masks, expected))
    chosen = model.predict(photo, boxes=boxes[:1], multimask_output=True)
    assert np.array_equal(chosen.masks[0], best(*predictor.predict(box=np.array(boxes[0]), multimask_output=True))[0])


def test_text_and_a_click_refine_the_detected_object_it_falls_in(model, photo, predictor):
    found = model.predict(photo, "cat, sofa", box_threshold=0.0, text_threshold=0.0, max_detections=3)
    x0, y0, x1, y1 = found.boxes[0]
    click = [(x0 + x1) / 2, (y0 + y1) / 2]
    holding = [i for i, (a, b, c, d) in enumerate(found.boxes) if a <= click[0] <= c and b <= click[1] <= d]
    target = min(holding, key=lambda i: (found.boxes[i][2] - found.boxes[i][0]) * (found.boxes[i][3] - found.boxes[i][1]))
    both = model.predict(photo, "cat, sofa", box_threshold=0.0, text_threshold=0.0, max_detections=3, points=[click])
    assert both.num_detections == found.num_detections and both.phrases == found.phrases
    masks, _, _ = predictor.predict(point_coords=np.array([click]), point_labels=np.array([1]), box=found.boxes[target],
                                    multimask_output=False)
    assert np.array_equal(both.masks[target], masks[0])
    others = [i for i in range(found.num_detections) if i != target]
    assert all(np.array_equal(both.masks[i], found.masks[i]) for i in others), "the other objects are untouched"
    outside = model.predict(photo, "cat", max_detections=0, points=[[5, 5]])
    assert outside.phrases == ["object"], "a click where nothing was found is an object of its own"


@pytest.mark.parametrize("prompts, error, message", [
    (dict(points=[[900, 10]]), InvalidPromptError, "outside the 451x300 image"),
    (dict(points=[[10, 10]], point_labels=[2]), InvalidPromptError, "point_labels are 1 (object) or 0 (background)"),
    (dict(points=[[10, 10], [20, 20]], point_labels=[1]), InvalidPromptError, "2 points but 1 point_labels"),
    (dict(boxes=[[100, 100, 50, 200]]), InvalidPromptError, "x2 < x1"),
    (dict(boxes=[[1, 2, 3]]), InvalidPromptError, "boxes must be"),
    (dict(points=[[10, 10]], mask_input=np.zeros((64, 64))), InvalidPromptError, "mask_input is a (256, 256)"),
    (dict(mask_input=np.zeros((256, 256))), InvalidPromptError, "give points with it"),
    (dict(points=[[float("nan"), 1]]), InvalidPromptError, "finite"),
    (dict(point_labels=[1]), InvalidOptionError, "predict needs images and prompts"),
])
def test_bad_prompts_name_the_problem(model, photo, prompts, error, message):
    with pytest.raises(LangSAMError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        model.predict(photo, **prompts)
    assert type(raised.value) is error


def test_lang_sam_predict_takes_points_and_boxes(model, photo, sam_files, tiny_detector_dir, tmp_path, capsys):
    import json

    from pycocotools import mask as mask_utils

    from lang_sam.interfaces.cli import main

    common = ["--sam-checkpoint", str(sam_files[0]), "--detector", str(tiny_detector_dir), "--device", "cpu"]
    code = main(["predict", str(ASSETS / "chelsea.jpg"), "--points", "200,150;300,100", "--point-labels", "1,0",
                 "--boxes", "10,10,100,120", "--out", str(tmp_path / "out"), *common])
    assert code == 0
    written = json.loads((tmp_path / "out" / "chelsea.json").read_text())["detections"]
    expected = model.predict(photo, points=[[200, 150], [300, 100]], point_labels=[1, 0], boxes=[[10, 10, 100, 120]])
    assert [d["label"] for d in written] == expected.phrases == ["object", "object"]
    for detection, mask in zip(written, expected.masks):
        rle = {"size": detection["mask"]["size"], "counts": detection["mask"]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), mask)
    assert main(["predict", str(ASSETS / "chelsea.jpg"), "--points", "1,2,3", "--out", str(tmp_path / "bad"), *common]) == 2
    assert "--points takes 2 numbers per item" in capsys.readouterr().err
    assert main(["predict", str(ASSETS / "chelsea.jpg"), "--out", str(tmp_path / "bad"), *common]) == 2
    assert "--points / --boxes" in capsys.readouterr().err


def test_a_binary_mask_as_mask_input_upscales_back_to_itself():
    import torch

    from lang_sam.segmenter import processing

    mask = np.zeros((300, 451), bool)
    mask[40:200, 100:350] = True
    mask[120:160, 180:260] = False
    logits = processing.mask_to_low_res_logits(mask)
    assert logits.shape == (256, 256) and set(np.unique(logits)) == {-20.0, 20.0}
    back = processing.postprocess_masks(torch.from_numpy(logits)[None, None], processing.resized_shape(mask.shape), mask.shape)[0, 0] > 0
    assert (back.numpy() & mask).sum() / (back.numpy() | mask).sum() > 0.97


def test_multimask_returns_sams_three_candidates_with_their_scores(model, photo, predictor):
    click = model.predict(photo, points=[[200, 150]])
    masks, scores, _ = predictor.predict(point_coords=np.array([[200, 150]]), point_labels=np.array([1]))
    assert click.candidates.shape == (1, 3, 300, 451) and np.array_equal(click.candidates[0], masks)
    np.testing.assert_allclose(click.candidate_scores[0], scores, atol=1e-6)
    assert np.array_equal(click.masks[0], masks[np.argmax(scores)]), "masks holds the best candidate"
    both = model.predict(photo, points=[[200, 150]], boxes=[[300, 10, 440, 120]])  # the box: single-mask output
    assert both.candidates.shape == (2, 3, 300, 451) and np.isnan(both.candidate_scores[1, 1:]).all()
    assert np.array_equal(both.candidates[1, 0], both.masks[1]) and not both.candidates[1, 1:].any()
    assert model.predict(photo, boxes=[[300, 10, 440, 120]]).candidates is None
    exported = both.to_json()["detections"]  # the JSON holds the candidates each object was decoded with
    assert [len(d["candidates"]) for d in exported] == [3, 1] and "candidates" not in model.predict(photo, boxes=[[300, 10, 440, 120]]).to_json()["detections"][0]
    restored = LangSAMResult.from_json(both.to_json())
    assert np.array_equal(restored.candidates, both.candidates)
    np.testing.assert_allclose(restored.candidate_scores, both.candidate_scores, atol=1e-6)


def test_embed_once_then_decode_answers_as_predict_does(model, photo, predictor):
    """embed encodes once (into the cache predict uses); decode answers clicks and boxes against
    that embedding with no image: the masks SamPredictor gives for the same prompts."""
    model.embeddings.clear()
    embedding = model.embed(photo)
    assert torch.equal(embedding.features, predictor.get_image_embedding()) and len(model.embeddings) == 1
    assert model.embed(photo) is embedding, "the same pixels are encoded once"
    clicked = model.decode(embedding, points=[[200, 150]])
    mask, score, _ = best(*predictor.predict(point_coords=np.array([[200, 150]]), point_labels=np.array([1])))
    assert np.array_equal(clicked.masks[0], mask) and clicked.mask_scores[0] == pytest.approx(score, abs=1e-6)
    prompts = dict(points=[[200, 150], [300, 100]], point_labels=[1, 0], boxes=[[10, 10, 100, 120]], multimask_output=True)
    decoded, predicted = model.decode(embedding, **prompts), model.predict(photo, **prompts)
    assert np.array_equal(decoded.masks, predicted.masks) and np.array_equal(decoded.candidates, predicted.candidates)
    assert decoded.phrases == predicted.phrases and np.allclose(decoded.boxes, predicted.boxes)
    with pytest.raises(InvalidPromptError, match="decode needs points"):
        model.decode(embedding)
    with pytest.raises(InvalidPromptError, match="outside the 451x300 image"):
        model.decode(embedding, points=[[452, 3]])
