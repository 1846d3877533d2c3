"""LangSAM end to end through the public API, with random models saved in the real formats."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from lang_sam import InvalidOptionError, InvalidPromptError
from lang_sam.pipeline import LangSAM
from lang_sam.results import LangSAMResult
from lang_sam.segmenter import SamPredictor
from tests.conftest import shared_image
from tests.detector.test_grounding_dino import ASSETS

LOOSE = dict(box_threshold=0.0, text_threshold=0.0)


@pytest.fixture(scope="module")
def model(sam_files, tiny_detector_dir):
    return LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype="float32")


@pytest.fixture
def encoder_calls(model, monkeypatch):
    """The image-encoder runs of the test, counted from an empty embedding cache (so that they do
    not depend on which images earlier tests left in it)."""
    model.embeddings.clear()
    calls = []
    encoder = model.sam.image_encoder
    original = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda x: calls.append(x.shape) or original(x))
    return calls


def assert_well_formed(result: LangSAMResult, height: int, width: int, classes: list[str]) -> None:
    count = result.num_detections
    assert result.masks.shape == (count, height, width) and result.masks.dtype == bool
    assert result.boxes.shape == (count, 4) and result.boxes.dtype == np.float32
    assert result.logits.shape == (count,) and result.mask_scores.shape == (count,)
    assert set(result.phrases) <= set(classes) and result.classes == classes
    assert np.all(result.logits[:-1] >= result.logits[1:])
    assert np.all(result.boxes[:, [0, 2]] <= width) and np.all(result.boxes[:, [1, 3]] <= height) and np.all(result.boxes >= 0)


def test_predict_unpacks_like_lang_segment_anything(model):
    image = Image.open(ASSETS / "astronaut.jpg").convert("RGB")
    result = model.predict(image, "Person, flag", max_detections=6, **LOOSE)
    assert_well_formed(result, 512, 512, ["person", "flag"])
    assert result.num_detections == 6
    masks, boxes, phrases, logits = result
    assert masks is result.masks and phrases == result.phrases and logits is result.logits
    predictor = SamPredictor(model.sam)
    predictor.set_image(np.asarray(image))
    direct, _, _ = predictor.predict_torch(boxes=torch.from_numpy(boxes), multimask_output=False, prompts_in_image_pixels=True)
    assert np.array_equal(masks, direct[:, 0].numpy()), "each mask is SAM's single-mask answer to its box"
    assert len(result) == 4 and result[0] is masks and result[1] is boxes and result[2] is phrases and result[3] is logits
    assert result[-1] is logits and list(result[:2]) == [masks, boxes]
    empty = model.predict(image, "person", box_threshold=1.0)
    assert len(empty) == 4 and empty.num_detections == 0 and empty[0].shape == (0, 512, 512)


def test_lang_segment_anything_keywords_and_dicts(model, sam_files, tiny_detector_dir):
    """v1: LangSAM(sam_type=, ckpt_path=), predict(image_pil=, text_prompt=); v0.2.x: LangSAM(sam_ckpt_path=,
    gdino_model_ckpt_path=, gdino_processor_ckpt_path=), predict(images_pil=[...], texts_prompt=[...])
    giving one dict-like result per image."""
    image = Image.open(ASSETS / "chelsea.jpg").convert("RGB")
    v1 = LangSAM(ckpt_path=sam_files[0], detector=model.detector, device="cpu", dtype="float32")
    masks, boxes, phrases, logits = v1.predict(image_pil=image, text_prompt="cat", max_detections=3, **LOOSE)
    expected = model.predict(image, "cat", max_detections=3, **LOOSE)
    np.testing.assert_array_equal(masks, expected.masks)
    assert phrases == expected.phrases
    v02 = LangSAM(sam_ckpt_path=sam_files[0], gdino_model_ckpt_path=tiny_detector_dir,
                  gdino_processor_ckpt_path=tiny_detector_dir, device="cpu", dtype="float32")
    results = v02.predict(images_pil=[image, image], texts_prompt=["cat", "sofa"], max_detections=3, **LOOSE)
    assert len(results) == 2
    for result, prompt in zip(results, ["cat", "sofa"]):
        count = result.num_detections
        assert result["masks"].shape == (count, 300, 451) and result["boxes"].shape == (count, 4)
        assert len(result["scores"]) == len(result["labels"]) == len(result["mask_scores"]) == count == 3
        assert set(result["labels"]) == {prompt} and result["scores"] is result.logits
        assert result.keys() == ["masks", "boxes", "scores", "labels", "mask_scores"]
    np.testing.assert_array_equal(results[0]["masks"], expected.masks)
    with pytest.raises(KeyError, match="has the keys masks, boxes"):
        results[0]["phrases_typo"]
    with pytest.raises(InvalidOptionError, match="sam_checkpoint and ckpt_path"):
        LangSAM(sam_checkpoint=sam_files[0], ckpt_path=sam_files[1])
    with pytest.raises(InvalidOptionError, match="images and image_pil"):
        model.predict(image, "cat", image_pil=image)


def test_nothing_detected_is_an_empty_result_without_running_sam(model, encoder_calls):
    result = model.predict(ASSETS / "coffee.jpg", "cup", box_threshold=1.0)
    assert result.num_detections == 0
    assert result.masks.shape == (0, 400, 600) and result.boxes.shape == (0, 4)
    assert result.to_json()["detections"] == [] and len(result.to_supervision()) == 0
    assert encoder_calls == []


def test_second_prompt_on_the_same_image_reuses_the_embedding(model, encoder_calls):
    image = np.asarray(Image.open(ASSETS / "chelsea.jpg").convert("RGB"))
    first = model.predict(image, "cat", max_detections=3, **LOOSE)
    second = model.predict(image.copy(), "sofa, cushion", max_detections=3, **LOOSE)
    assert first.num_detections == second.num_detections == 3
    assert len(encoder_calls) == 1
    model.predict(image[::-1].copy(), "cat", max_detections=1, **LOOSE)
    assert len(encoder_calls) == 2, "another image is encoded"


def test_embeddings_of_the_last_few_images_are_kept(model, encoder_calls, monkeypatch):
    monkeypatch.setattr(model.embeddings, "capacity", 2)
    base = np.asarray(Image.open(ASSETS / "chelsea.jpg").convert("RGB"))
    first, second, third = (np.where(base < 255, base + step, base).astype(np.uint8) for step in (1, 2, 3))
    fresh = model.predict(first, "cat, sofa", max_detections=3, **LOOSE)
    model.predict(second, "cat", max_detections=1, **LOOSE)
    cached = model.predict(first, "cat, sofa", max_detections=3, **LOOSE)
    assert len(encoder_calls) == 2, "the first image's embedding is still cached"
    np.testing.assert_array_equal(cached.masks, fresh.masks)
    np.testing.assert_array_equal(cached.mask_scores, fresh.mask_scores)
    model.predict(third, "cat", max_detections=1, **LOOSE)  # evicts the least recently used: second
    model.predict(first, "cat", max_detections=1, **LOOSE)
    assert len(encoder_calls) == 3
    model.predict(second, "cat", max_detections=1, **LOOSE)
    assert len(encoder_calls) == 4 and len(model.embeddings) == 2


def test_images_prepared_in_other_threads_predict_as_the_images(model, encoder_calls):
    paths = [ASSETS / "coffee.jpg", ASSETS / "chelsea.jpg", ASSETS / "astronaut.jpg"]
    with ThreadPoolExecutor(max_workers=2) as pool:  # later images are prepared while earlier ones predict
        ahead = [model.predict(future.result(), "cup, cat", max_detections=3, **LOOSE) for future in [pool.submit(model.prepare, p) for p in paths]]
    assert len(encoder_calls) == 3
    prepared = model.prepare(paths[0])
    assert prepared.original_size == (400, 600) and prepared.segmenter_input.pixels.shape == (683, 1024, 3)
    for path, result in zip(paths, ahead):
        direct = model.predict(path, "cup, cat", max_detections=3, **LOOSE)
        assert direct.phrases == result.phrases and direct.image_size == result.image_size
        np.testing.assert_array_equal(direct.boxes, result.boxes)
        np.testing.assert_array_equal(direct.masks, result.masks)
    assert len(encoder_calls) == 3, "a prepared image and the image itself share one cached embedding"


def test_batch_equals_singles(model):
    images = [ASSETS / "coffee.jpg", ASSETS / "chelsea.jpg"]
    prompts = ["cup", "cat, sofa"]
    batch = model.predict(images, prompts, max_detections=4, **LOOSE)
    for image, prompt, result in zip(images, prompts, batch):
        single = model.predict(image, prompt, max_detections=4, **LOOSE)
        assert single.phrases == result.phrases
        np.testing.assert_allclose(single.boxes, result.boxes, atol=1e-3)
        assert (single.masks == result.masks).mean() > 0.999


def test_max_detections_keeps_the_best_scores(model):
    everything = model.predict(ASSETS / "coffee.jpg", "cup, spoon", **LOOSE)
    best = model.predict(ASSETS / "coffee.jpg", "cup, spoon", max_detections=5, **LOOSE)
    np.testing.assert_allclose(best.logits, everything.logits[:5])
    assert best.phrases == everything.phrases[:5]
    with pytest.raises(InvalidOptionError, match="max_detections"):
        model.predict(ASSETS / "coffee.jpg", "cup", max_detections=-1)


def test_json_masks_decode_with_pycocotools(model):
    result = model.predict(ASSETS / "astronaut.jpg", "person", max_detections=3, **LOOSE)
    exported = result.to_json()
    assert exported["image"] == {"height": 512, "width": 512}
    assert [d["label"] for d in exported["detections"]] == result.phrases
    for detection, mask in zip(exported["detections"], result.masks):
        rle = {"size": detection["mask"]["size"], "counts": detection["mask"]["counts"].encode()}
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), mask)


def test_json_reads_back_into_the_same_result(model):
    result = model.predict(ASSETS / "chelsea.jpg", "cat, sofa", max_detections=4, **LOOSE)
    restored = LangSAMResult.from_json(result.to_json())
    np.testing.assert_array_equal(restored.masks, result.masks)
    np.testing.assert_allclose(restored.boxes, result.boxes, atol=1e-3)
    np.testing.assert_allclose(restored.logits, result.logits, atol=1e-6)
    np.testing.assert_allclose(restored.mask_scores, result.mask_scores, atol=1e-6)
    assert restored.phrases == result.phrases and restored.image_size == (300, 451)
    assert [restored.classes[i] for i in restored.class_ids] == result.phrases
    empty = LangSAMResult.from_json(model.predict(ASSETS / "coffee.jpg", "cup", box_threshold=1.0).to_json())
    assert empty.masks.shape == (0, 400, 600) and empty.boxes.shape == (0, 4)


def test_a_loaded_detector_is_shared_only_with_the_same_device_and_dtype(model, sam_files):
    sibling = LangSAM(sam_checkpoint=sam_files[1], detector=model.detector, device="cpu", dtype="float32")
    assert sibling.detector is model.detector
    with pytest.raises(InvalidOptionError, match="same device and dtype"):
        LangSAM(sam_checkpoint=sam_files[1], detector=model.detector, device="cpu", dtype="bfloat16")


def test_supervision_detections(model):
    result = model.predict(ASSETS / "chelsea.jpg", "cat, sofa", max_detections=4, **LOOSE)
    detections = result.to_supervision()
    assert len(detections) == 4 and detections.mask.shape == (4, 300, 451)
    assert list(detections.data["class_name"]) == result.phrases
    np.testing.assert_array_equal(detections.class_id, result.class_ids)


def test_set_sam_really_switches(model, sam_files):
    model.set_sam(sam_checkpoint=sam_files[1])
    expected = torch.load(sam_files[1], weights_only=True)["mask_decoder.iou_token.weight"]
    torch.testing.assert_close(model.sam.mask_decoder.iou_token.weight, expected)
    result = model.predict(ASSETS / "coffee.jpg", "cup", max_detections=2, **LOOSE)
    assert result.num_detections == 2
    model.set_sam(sam_checkpoint=sam_files[0])
    with pytest.raises(InvalidOptionError, match="Unknown SAM type"):
        model.set_sam("vit_x")


def test_real_photo_from_shared_data(model):
    image = shared_image("dogs.jpg")
    result = model.predict(image, "dog. person.", max_detections=5, **LOOSE)
    assert_well_formed(result, *image.shape[:2], ["dog", "person"])


def test_multimask_keeps_the_candidate_sam_scores_best_and_nms_reaches_the_detector(model):
    from lang_sam.segmenter.sam import decode_prompts, encode_image

    image = np.asarray(Image.open(ASSETS / "chelsea.jpg").convert("RGB"))
    result = model.predict(image, "cat, sofa", max_detections=5, multimask_output=True, **LOOSE)
    prepared = model.prepare(image)
    embedding = encode_image(model.sam, torch.from_numpy(prepared.segmenter_input.pixels).permute(2, 0, 1)[None], prepared.original_size)
    candidates, iou, _ = decode_prompts(model.sam, embedding, boxes=torch.from_numpy(result.boxes), multimask_output=True,
                                        prompts_in_image_pixels=True)
    assert candidates.shape[1] == 3
    best = iou.argmax(dim=1)
    np.testing.assert_allclose(result.mask_scores, iou.max(dim=1).values.numpy(), atol=1e-6)
    np.testing.assert_array_equal(result.masks, candidates[torch.arange(5), best].numpy())
    single = model.predict(image, "cat, sofa", max_detections=5, **LOOSE)
    assert not np.array_equal(single.masks, result.masks), "the single-mask output is another mask"
    suppressed = model.predict(image, "cat, sofa", nms_iou_threshold=0.3, **LOOSE)
    expected = model.detector.detect([Image.fromarray(image)], "cat, sofa", nms_iou_threshold=0.3, **LOOSE)[0]
    np.testing.assert_allclose(suppressed.boxes, expected.xyxy, atol=1e-4)
    assert suppressed.num_detections < model.predict(image, "cat, sofa", **LOOSE).num_detections
    with pytest.raises(InvalidOptionError, match="multimask_output must be True, False or None"):
        model.predict(image, "cat", multimask_output="yes")
    with pytest.raises(InvalidOptionError, match="nms_iou_threshold"):
        model.predict(image, "cat", nms_iou_threshold=2)


def test_classes_as_a_list_keep_their_periods_and_commas(model):
    result = model.predict(ASSETS / "chelsea.jpg", classes=["St. Bernard", "cat, tabby"], max_detections=3, **LOOSE)
    assert result.classes == ["st. bernard", "cat, tabby"] and set(result.phrases) <= set(result.classes)
    both = model.predict([ASSETS / "chelsea.jpg", ASSETS / "coffee.jpg"], classes=["st. bernard"], max_detections=1, **LOOSE)
    assert [r.classes for r in both] == [["st. bernard"], ["st. bernard"]]
    with pytest.raises(InvalidPromptError, match="classes is a list of class names"):
        model.predict(ASSETS / "chelsea.jpg", classes="cat")
    with pytest.raises(InvalidOptionError, match="prompts and classes"):
        model.predict(ASSETS / "chelsea.jpg", "cat", classes=["cat"])
