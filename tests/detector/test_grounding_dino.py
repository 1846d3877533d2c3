"""GroundingDinoDetector end to end with small random models saved in transformers' format."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lang_sam import InvalidOptionError, InvalidPromptError
from lang_sam.detector import GroundingDinoDetector
from lang_sam.devices import resolve_device, resolve_dtype

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def photo(name: str) -> Image.Image:
    return Image.open(ASSETS / name).convert("RGB")


@pytest.fixture(scope="module")
def detector(tiny_detector_dir):
    return GroundingDinoDetector(tiny_detector_dir, device="cpu", dtype="float32")


def assert_well_formed(result, image: Image.Image, classes: list[str]) -> None:
    count = len(result)
    assert result.xyxy.shape == (count, 4) and result.xyxy.dtype == np.float32
    assert result.box_scores.shape == (count,) and result.class_ids.shape == (count,)
    assert set(result.labels) <= set(classes) and list(result.classes) == classes
    assert (result.xyxy[:, 0] >= 0).all() and (result.xyxy[:, 2] <= image.width).all()
    assert (result.xyxy[:, 1] >= 0).all() and (result.xyxy[:, 3] <= image.height).all()
    assert (result.xyxy[:, 2] >= result.xyxy[:, 0]).all() and (result.xyxy[:, 3] >= result.xyxy[:, 1]).all()
    assert np.all(result.box_scores[:-1] >= result.box_scores[1:])


def test_detects_with_labels_from_the_prompt_only(detector):
    image = photo("astronaut.jpg")
    result = detector.detect([image], "Person. Flag, rocket", box_threshold=0.0, text_threshold=0.0)[0]
    assert len(result) == 50  # every query kept at zero thresholds: one label each
    assert_well_formed(result, image, ["person", "flag", "rocket"])
    assert all(label in {"person", "flag", "rocket"} for label in result.labels)


def test_thresholds_filter_by_box_and_label_scores(detector):
    image = photo("coffee.jpg")
    everything = detector.detect([image], "cup, spoon", box_threshold=0.0, text_threshold=0.0)[0]
    cutoff = float(np.median(everything.box_scores))
    kept = detector.detect([image], "cup, spoon", box_threshold=cutoff, text_threshold=0.0)[0]
    assert 0 < len(kept) < len(everything)
    assert (kept.box_scores >= cutoff).all()
    label_cutoff = float(np.median(everything.data["class_scores"]))
    by_label = detector.detect([image], "cup, spoon", box_threshold=0.0, text_threshold=label_cutoff)[0]
    assert (by_label.data["class_scores"] >= label_cutoff).all() and len(by_label) < len(everything)


def test_preprocessed_input_detects_as_the_image(detector):
    image = photo("coffee.jpg")
    prepared = detector.preprocess(image)
    assert prepared.image_size == (400, 600) and prepared.pixel_values.shape[:2] == (1, 3)
    direct, ahead = (detector.detect([source], "cup, spoon", box_threshold=0.0, text_threshold=0.0)[0] for source in (image, prepared))
    assert direct.labels == ahead.labels
    torch.testing.assert_close(direct.xyxy, ahead.xyxy, atol=0, rtol=0)
    torch.testing.assert_close(direct.box_scores, ahead.box_scores, atol=0, rtol=0)


def test_batch_gives_the_same_detections_as_singles(detector):
    images = [photo("astronaut.jpg"), photo("coffee.jpg"), photo("astronaut.jpg").transpose(Image.FLIP_LEFT_RIGHT), photo("chelsea.jpg")]
    prompts = ["person, flag", "cup", "person, flag", "cat, sofa"]
    batched = detector.detect(images, prompts, box_threshold=0.2, text_threshold=0.2)
    for image, prompt, result in zip(images, prompts, batched):
        single = detector.detect([image], prompt, box_threshold=0.2, text_threshold=0.2)[0]
        assert single.labels == result.labels
        torch.testing.assert_close(single.xyxy, result.xyxy, atol=1e-3, rtol=0)
        torch.testing.assert_close(single.box_scores, result.box_scores, atol=1e-5, rtol=0)


def test_one_prompt_for_many_images(detector):
    images = [photo("coffee.jpg"), photo("chelsea.jpg")]
    results = detector.detect(images, "cat, cup", box_threshold=0.0, text_threshold=0.0)
    assert isinstance(results, list) and len(results) == 2
    for image, result in zip(images, results):
        assert_well_formed(result, image, ["cat", "cup"])


def test_long_prompt_runs_in_chunks_and_drops_no_class(detector, monkeypatch):
    classes = [f"thing {index}" for index in range(300)]
    calls = []
    original_forward = detector.model.forward
    monkeypatch.setattr(detector.model, "forward", lambda **kwargs: calls.append(kwargs["input_ids"].shape) or original_forward(**kwargs))
    result = detector.detect([photo("coffee.jpg")], ", ".join(classes), box_threshold=0.0, text_threshold=0.0)[0]
    assert len(calls) >= 3 and all(shape[1] <= 256 for shape in calls)
    assert list(result.classes) == classes
    assert result.class_ids.max() < 300 and len(result) == 50 * len(calls)
    later_classes = {label for label in result.labels if int(label.split()[1]) >= 150}
    assert later_classes, "classes of later chunks must be able to win"


def same_class_overlap(result, threshold: float) -> bool:
    from torchvision.ops import box_iou

    for class_id in np.unique(result.class_ids):
        same = torch.from_numpy(result.xyxy[result.class_ids == class_id])
        if ((box_iou(same, same) - torch.eye(len(same))) > threshold).any():
            return True
    return False


def test_nms_removes_same_class_overlaps(detector):
    image = photo("astronaut.jpg")
    loose = detector.detect([image], "person, flag", box_threshold=0.0, text_threshold=0.0)[0]
    strict = detector.detect([image], "person, flag", box_threshold=0.0, text_threshold=0.0, nms_iou_threshold=0.05)[0]
    assert same_class_overlap(loose, 0.05), "the test image must start with overlapping boxes"
    assert 0 < len(strict) < len(loose)
    assert not same_class_overlap(strict, 0.05)
    loose_rows = {tuple(row) for row in loose.xyxy.tolist()}
    assert all(tuple(row) in loose_rows for row in strict.xyxy.tolist())


def test_bfloat16_stays_close_to_float32(tiny_detector_dir):
    """Compared before query selection: with random weights, proposal scores are so close that
    bfloat16 noise reorders the top-k, so final queries do not pair up one to one."""
    image = photo("chelsea.jpg")
    exact = GroundingDinoDetector(tiny_detector_dir, device="cpu", dtype="float32")
    fast = GroundingDinoDetector(tiny_detector_dir, device="cpu", dtype=torch.bfloat16)
    assert next(fast.model.parameters()).dtype == torch.bfloat16
    inputs = exact.processor(images=image, text="cat . sofa .", return_tensors="pt")
    with torch.inference_mode():
        exact_out = exact.model(**inputs)
        fast_out = fast.model(**{k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in inputs.items()})

    def correlation(a, b):
        finite = torch.isfinite(a) & torch.isfinite(b.float())
        return np.corrcoef(a[finite].float().numpy(), b.float()[finite].numpy())[0, 1]

    assert correlation(exact_out.encoder_last_hidden_state_vision, fast_out.encoder_last_hidden_state_vision) > 0.99
    assert correlation(exact_out.enc_outputs_class, fast_out.enc_outputs_class) > 0.99
    assert torch.isfinite(fast_out.pred_boxes).all() and not torch.isnan(fast_out.logits).any()
    assert_well_formed(fast.detect([image], "cat, sofa", box_threshold=0.0, text_threshold=0.0)[0], image, ["cat", "sofa"])


def test_bad_prompt_fails_before_any_model_runs(detector, monkeypatch):
    def forbidden(**kwargs):
        raise AssertionError("the model ran")

    monkeypatch.setattr(detector.model, "forward", forbidden)
    for prompt in ["", "  ,, .", "???"]:
        with pytest.raises(InvalidPromptError):
            detector.detect([photo("coffee.jpg")], prompt)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), "0.3", None, True])
def test_bad_thresholds_are_rejected(detector, threshold):
    with pytest.raises(InvalidOptionError, match="box_threshold"):
        detector.detect([photo("coffee.jpg")], "cup", box_threshold=threshold)


def test_prompt_count_must_match_images(detector):
    with pytest.raises(InvalidOptionError, match="2 images but 3 prompts"):
        detector.detect([photo("coffee.jpg")] * 2, ["a", "b", "c"])


def test_missing_model_offline_names_model_cache_and_fix(tmp_path):
    code = "from lang_sam.detector import GroundingDinoDetector; GroundingDinoDetector('IDEA-Research/grounding-dino-tiny')"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert completed.returncode != 0
    assert "ModelLoadError" in completed.stderr
    assert "IDEA-Research/grounding-dino-tiny" in completed.stderr
    assert str(tmp_path / "hf") in completed.stderr and "local copy" in completed.stderr


def test_devices_and_dtypes():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in {"cpu", "cuda", "mps"}
    with pytest.raises(InvalidOptionError, match="Unknown device"):
        resolve_device("quantum")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidOptionError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(InvalidOptionError, match="float32"):
        resolve_dtype(torch.float16, torch.device("cpu"))


def test_true_swin_t_size_with_random_weights(bert_tokenizer):
    """GroundingDinoConfig's defaults are Grounding DINO Swin-T (with a bert-base text encoder)."""
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    torch.manual_seed(0)
    config = GroundingDinoConfig()
    assert (config.backbone_config.embed_dim, list(config.backbone_config.depths)) == (96, [2, 2, 6, 2])
    assert config.num_queries == 900
    model = GroundingDinoForObjectDetection(config)
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=bert_tokenizer)
    detector = GroundingDinoDetector.from_parts(model, processor, device="cpu", dtype="float32")
    image = photo("astronaut.jpg")
    forwards = []
    model.register_forward_hook(lambda module, args, kwargs, output: forwards.append(output), with_kwargs=True)
    result = detector.detect([image], "person, flag, rocket", box_threshold=0.0, text_threshold=0.0)[0]
    assert_well_formed(result, image, ["person", "flag", "rocket"])
    # transformers' own post-processing of the same forward pass, at zero thresholds: every query
    (expected,) = processor.post_process_grounded_object_detection(
        forwards[0], threshold=0.0, text_threshold=0.0, target_sizes=[(image.height, image.width)])
    assert len(forwards) == 1 and len(expected["scores"]) == config.num_queries
    height, width = image.height, image.width
    expected_boxes = expected["boxes"].clamp(min=0).minimum(torch.tensor([width, height, width, height]))
    assert np.allclose(np.sort(result.box_scores)[::-1], expected["scores"].sort(descending=True).values.numpy(), atol=1e-6)
    ours, theirs = (np.array(sorted(b.tolist())) for b in (result.xyxy, expected_boxes))
    assert np.allclose(ours, theirs, atol=1e-3), "the same 900 boxes, clipped to the image"
