"""OWLv2 and MM-Grounding-DINO behind the Detector interface: tiny random models saved with
save_pretrained, loaded through load_detector, checked against transformers' model, processor and
post-processing called directly on the same image and classes."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from lang_sam.detector import GroundingDinoDetector
from lang_sam.detector.deformable_attention import float32_deformable_attention_forward
from lang_sam.errors import CheckpointError, InvalidOptionError, InvalidPromptError, ModelLoadError
from lang_sam.families.base import Detector
from lang_sam.families.detectors import Owlv2Detector, load_detector
from lang_sam.registry import DETECTORS
from tests.families.conftest import OWL_IMAGE_SIZE
from tests.detector.test_grounding_dino import photo, same_class_overlap


@pytest.fixture(scope="module")
def owlv2(owlv2_dir):
    return load_detector(owlv2_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def mm_gdino(mm_gdino_dir):
    return load_detector(mm_gdino_dir, device="cpu", dtype="float32")


def owlv2_reference(folder, image: Image.Image, classes: list[str]) -> dict:
    """transformers' OWLv2 as its docs use it: processor, model, post_process_grounded_object_detection
    with the original size as target size, every box kept (threshold below any sigmoid)."""
    from transformers import Owlv2ForObjectDetection, Owlv2Processor

    model = Owlv2ForObjectDetection.from_pretrained(folder).eval()
    processor = Owlv2Processor.from_pretrained(folder)
    with torch.inference_mode():
        outputs = model(**processor(text=[classes], images=image, return_tensors="pt"))
    (result,) = processor.post_process_grounded_object_detection(
        outputs, threshold=-1.0, target_sizes=[(image.height, image.width)], text_labels=[classes])
    return result


def assert_same_detections(ours, theirs_boxes, theirs_scores, theirs_class_ids, image: Image.Image) -> None:
    """Ours against the reference's, both sorted by score; the reference boxes clipped to the image
    (ours are always inside it)."""
    order = theirs_scores.argsort(descending=True, stable=True)
    limit = torch.tensor([image.width, image.height, image.width, image.height], dtype=torch.float32)
    expected_boxes = theirs_boxes[order].clamp(min=0).minimum(limit)
    assert len(ours) == len(order)
    torch.testing.assert_close(torch.from_numpy(ours.box_scores), theirs_scores[order], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.from_numpy(ours.xyxy), expected_boxes, atol=1e-3, rtol=0)
    assert ours.class_ids.tolist() == theirs_class_ids[order].tolist()


def test_loaders_pick_the_family_from_the_folder(owlv2, mm_gdino):
    assert isinstance(owlv2, Owlv2Detector) and isinstance(owlv2, Detector)
    assert isinstance(mm_gdino, GroundingDinoDetector) and isinstance(mm_gdino, Detector)
    assert type(mm_gdino.model).__name__ == "MMGroundingDinoForObjectDetection"
    assert {entry.family for entry in DETECTORS.values()} == {"grounding-dino", "mm-grounding-dino", "owlv2"}
    assert DETECTORS["mm-grounding-dino-tiny"].repo_id == "openmmlab-community/mm_grounding_dino_tiny_o365v1_goldg_v3det"
    assert DETECTORS["owlv2-base-patch16-ensemble"].repo_id == "google/owlv2-base-patch16-ensemble"


@pytest.mark.parametrize("name", ["coffee.jpg", "astronaut.jpg"])  # landscape (padded below) and square
def test_owlv2_equals_transformers_called_directly(owlv2, owlv2_dir, name):
    image = photo(name)
    classes = ["cup", "spoon", "table top"]
    expected = owlv2_reference(owlv2_dir, image, classes)
    result = owlv2.detect([image], "Cup, spoon. table top", box_threshold=0.0, text_threshold=0.0)[0]
    assert list(result.classes) == classes and set(result.labels) <= set(classes)
    assert len(result) == (OWL_IMAGE_SIZE // 16) ** 2, "every patch's box at zero thresholds"
    assert_same_detections(result, expected["boxes"], expected["scores"], expected["labels"], image)
    assert len(set(result.labels)) >= 2, "random heads must give more than one class, or labels are not tested"
    assert np.array_equal(result.data["class_scores"], result.box_scores)
    expected_labels = [expected["text_labels"][i] for i in expected["scores"].argsort(descending=True, stable=True)]
    assert result.labels == expected_labels


def test_owlv2_thresholds_keep_the_scores_at_or_above_the_larger(owlv2):
    image = photo("coffee.jpg")
    everything = owlv2.detect([image], "cup, spoon", box_threshold=0.0, text_threshold=0.0)[0]
    low, high = (float(np.quantile(everything.box_scores, q)) for q in (0.3, 0.7))
    for box_threshold, text_threshold in ((low, high), (high, low)):
        kept = owlv2.detect([image], "cup, spoon", box_threshold=box_threshold, text_threshold=text_threshold)[0]
        assert len(kept) == int((everything.box_scores >= high).sum()) > 0
        torch.testing.assert_close(kept.xyxy, everything.xyxy[everything.box_scores >= high])


def test_owlv2_batch_equals_singles(owlv2):
    images = [photo("coffee.jpg"), photo("astronaut.jpg"), photo("chelsea.jpg"), photo("coffee.jpg").transpose(Image.FLIP_LEFT_RIGHT)]
    prompts = ["cup, spoon", "person, flag", "cup, spoon", ["cat", "sofa", "st. bernard"]]
    calls = []
    hook = owlv2.model.owlv2.vision_model.register_forward_hook(lambda module, args, output: calls.append(1))
    batched = owlv2.detect(images, prompts, box_threshold=0.0, text_threshold=0.0)
    hook.remove()
    assert len(calls) == 1, "images of one processed size share one vision-encoder call"
    for image, prompt, result in zip(images, prompts, batched):
        single = owlv2.detect([image], [prompt], box_threshold=0.0, text_threshold=0.0)[0]
        assert single.labels == result.labels and single.classes == result.classes
        torch.testing.assert_close(single.xyxy, result.xyxy, atol=1e-4, rtol=0)
        torch.testing.assert_close(single.box_scores, result.box_scores, atol=1e-6, rtol=0)


def test_owlv2_classes_in_chunks_equal_one_chunk(owlv2_dir, monkeypatch):
    classes = [f"thing {index}" for index in range(11)]
    whole = Owlv2Detector(owlv2_dir, device="cpu", dtype="float32", max_queries=100)
    chunked = Owlv2Detector(owlv2_dir, device="cpu", dtype="float32", max_queries=3)
    queries = []
    original = chunked.model.owlv2.get_text_features
    monkeypatch.setattr(chunked.model.owlv2, "get_text_features",
                        lambda **kwargs: queries.append(kwargs["input_ids"].shape[0]) or original(**kwargs))
    image = photo("chelsea.jpg")
    one, many = (detector.detect([image], ", ".join(classes), box_threshold=0.0, text_threshold=0.0)[0] for detector in (whole, chunked))
    assert queries == [3, 3, 3, 2]
    assert one.labels == many.labels and len({label for label in many.labels if int(label.split()[1]) >= 3}) > 0
    torch.testing.assert_close(one.box_scores, many.box_scores, atol=1e-6, rtol=0)
    torch.testing.assert_close(one.xyxy, many.xyxy, atol=0, rtol=0)


def test_owlv2_in_place_activations_give_transformers_values_bit_for_bit(owlv2, owlv2_dir):
    from transformers import Owlv2ForObjectDetection, Owlv2Processor
    from transformers.activations import QuickGELUActivation

    swapped = [module for module in owlv2.model.modules() if type(module) is QuickGELUActivation]
    assert swapped and all("forward" in vars(module) for module in swapped)
    reference = Owlv2ForObjectDetection.from_pretrained(owlv2_dir).eval()
    inputs = Owlv2Processor.from_pretrained(owlv2_dir)(text=[["cup", "spoon"]], images=photo("coffee.jpg"), return_tensors="pt")
    with torch.inference_mode():
        ours, theirs = owlv2.model(**inputs), reference(**inputs)
    assert torch.equal(ours.logits, theirs.logits) and torch.equal(ours.pred_boxes, theirs.pred_boxes)


def test_owlv2_encodes_a_repeated_prompt_once(owlv2_dir, monkeypatch):
    """The text embeddings of the last CLASS_SETS_KEPT class chunks are kept (least recently used
    goes first); the answers are those of a fresh encoding."""
    detector = Owlv2Detector(owlv2_dir, device="cpu", dtype="float32")
    encoded = []
    original = detector.model.owlv2.get_text_features
    monkeypatch.setattr(detector.model.owlv2, "get_text_features",
                        lambda **kwargs: encoded.append(kwargs["input_ids"].shape[0]) or original(**kwargs))
    monkeypatch.setattr("lang_sam.families.owlv2.CLASS_SETS_KEPT", 2)
    image = photo("coffee.jpg")
    first, again = (detector.detect([image], "cup, spoon", box_threshold=0.0, text_threshold=0.0)[0] for _ in range(2))
    assert encoded == [2]
    assert first.labels == again.labels and np.array_equal(first.box_scores, again.box_scores) and np.array_equal(first.xyxy, again.xyxy)
    for prompt in ("cat", "cup, spoon", "dog", "cup, spoon", "cat"):  # used last, "cup, spoon" stays; "cat" left for "dog"
        detector.detect([image], prompt, box_threshold=0.0, text_threshold=0.0)
    assert encoded == [2, 1, 1, 1]
    fresh = Owlv2Detector(owlv2_dir, device="cpu", dtype="float32").detect([image], "cup, spoon", box_threshold=0.0, text_threshold=0.0)[0]
    assert fresh.labels == first.labels and np.array_equal(fresh.box_scores, first.box_scores)


def test_owlv2_bfloat16_stays_close_to_float32(owlv2_dir):
    image = photo("coffee.jpg")
    exact = Owlv2Detector(owlv2_dir, device="cpu", dtype="float32")
    fast = Owlv2Detector(owlv2_dir, device="cpu", dtype="bfloat16")
    assert next(fast.model.parameters()).dtype == torch.bfloat16
    classes = ["cup", "spoon"]
    (exact_scores, _, exact_boxes), = exact._patch_predictions([exact.preprocess(image)], [classes])
    (fast_scores, _, fast_boxes), = fast._patch_predictions([fast.preprocess(image)], [classes])
    assert fast_scores.dtype == torch.float32 and torch.isfinite(fast_scores).all() and torch.isfinite(fast_boxes).all()
    torch.testing.assert_close(fast_scores, exact_scores, atol=0.03, rtol=0)
    torch.testing.assert_close(fast_boxes, exact_boxes, atol=0.03, rtol=0)
    result = fast.detect([image], "cup, spoon", box_threshold=0.0, text_threshold=0.0)[0]
    assert result.xyxy.dtype == np.float32 and len(result) == (OWL_IMAGE_SIZE // 16) ** 2


@pytest.mark.parametrize("family", ["owlv2", "mm_gdino"])
def test_nms_removes_same_class_overlaps(family, request):
    detector = request.getfixturevalue(family)
    image = photo("astronaut.jpg")
    loose = detector.detect([image], "person, flag", box_threshold=0.0, text_threshold=0.0)[0]
    strict = detector.detect([image], "person, flag", box_threshold=0.0, text_threshold=0.0, nms_iou_threshold=0.1)[0]
    assert same_class_overlap(loose, 0.1), "the test image must start with overlapping boxes"
    assert 0 < len(strict) < len(loose) and not same_class_overlap(strict, 0.1)
    loose_rows = {tuple(row) for row in loose.xyxy.tolist()}
    assert all(tuple(row) in loose_rows for row in strict.xyxy.tolist())
    assert np.all(strict.box_scores[:-1] >= strict.box_scores[1:])


@pytest.mark.parametrize("family", ["owlv2", "mm_gdino"])
@pytest.mark.parametrize("option", ["box_threshold", "text_threshold", "nms_iou_threshold"])
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "0.3", True])
def test_bad_thresholds_are_rejected(family, option, value, request):
    detector = request.getfixturevalue(family)
    with pytest.raises(InvalidOptionError, match=option):
        detector.detect([photo("coffee.jpg")], "cup", **{option: value})


def test_owlv2_bad_prompts_fail_before_any_model_runs(owlv2, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the model ran")

    monkeypatch.setattr(owlv2.model, "image_embedder", forbidden)
    for prompt in ["", " ,, .", "???"]:
        with pytest.raises(InvalidPromptError):
            owlv2.detect([photo("coffee.jpg")], prompt)
    with pytest.raises(InvalidPromptError, match="longer than OWLv2's text encoder"):
        owlv2.detect([photo("coffee.jpg")], "cup, a very long class name indeed")
    with pytest.raises(InvalidOptionError, match="2 images but 3 prompts"):
        owlv2.detect([photo("coffee.jpg")] * 2, ["a", "b", "c"])
    with pytest.raises(InvalidOptionError, match="max_queries"):
        Owlv2Detector.from_parts(owlv2.model, owlv2.processor, device="cpu", max_queries=0)


def test_mm_gdino_equals_transformers_called_directly(mm_gdino, mm_gdino_dir):
    """The float32 deformable attention replaces MM-GDINO's kernel module too, and the result
    equals transformers' own forward and post-processing."""
    from transformers import AutoProcessor, MMGroundingDinoForObjectDetection

    swapped = [m for m in mm_gdino.model.modules() if type(m).__name__ == "MultiScaleDeformableAttention"]
    assert len(swapped) == 3, "one per encoder layer, two decoder layers"
    assert all(isinstance(m.forward, types.MethodType) and m.forward.__func__ is float32_deformable_attention_forward for m in swapped)
    reference = MMGroundingDinoForObjectDetection.from_pretrained(mm_gdino_dir).eval()
    assert not any(isinstance(m.forward, types.MethodType) and m.forward.__func__ is float32_deformable_attention_forward
                   for m in reference.modules())
    processor = AutoProcessor.from_pretrained(mm_gdino_dir)
    image = photo("astronaut.jpg")
    inputs = processor(images=image, text="person . flag . rocket .", return_tensors="pt")
    with torch.inference_mode():
        theirs, ours_raw = reference(**inputs), mm_gdino.model(**inputs)
    torch.testing.assert_close(ours_raw.logits, theirs.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours_raw.pred_boxes, theirs.pred_boxes, atol=1e-5, rtol=1e-4)
    (expected,) = processor.post_process_grounded_object_detection(
        theirs, threshold=0.0, text_threshold=0.0, target_sizes=[(image.height, image.width)])
    result = mm_gdino.detect([image], "Person, flag. rocket", box_threshold=0.0, text_threshold=0.0)[0]
    assert list(result.classes) == ["person", "flag", "rocket"] and set(result.labels) <= set(result.classes)
    assert len(result) == len(expected["scores"]) == 50
    order = expected["scores"].argsort(descending=True, stable=True)
    torch.testing.assert_close(torch.from_numpy(result.box_scores), expected["scores"][order], atol=1e-5, rtol=0)
    limit = torch.tensor([image.width, image.height, image.width, image.height], dtype=torch.float32)
    ours, want = (np.array(sorted(b.tolist())) for b in (result.xyxy, expected["boxes"].clamp(min=0).minimum(limit)))
    assert np.allclose(ours, want, atol=1e-2), "the same 50 boxes, clipped to the image"


def test_mm_gdino_batch_equals_singles(mm_gdino):
    images = [photo("astronaut.jpg"), photo("coffee.jpg"), photo("astronaut.jpg").transpose(Image.FLIP_LEFT_RIGHT)]
    prompts = ["person, flag", "cup", "person, flag"]
    for image, prompt, result in zip(images, prompts, mm_gdino.detect(images, prompts, box_threshold=0.0, text_threshold=0.0)):
        single = mm_gdino.detect([image], prompt, box_threshold=0.0, text_threshold=0.0)[0]
        assert single.labels == result.labels
        torch.testing.assert_close(single.xyxy, result.xyxy, atol=1e-3, rtol=0)
        torch.testing.assert_close(single.box_scores, result.box_scores, atol=1e-5, rtol=0)


def test_mm_gdino_bfloat16_runs_and_stays_close(mm_gdino_dir, mm_gdino):
    """Compared before query selection, as for Grounding DINO: bf16 noise reorders near-tied proposals."""
    fast = load_detector(mm_gdino_dir, device="cpu", dtype="bfloat16")
    image = photo("chelsea.jpg")
    inputs = mm_gdino.processor(images=image, text="cat . sofa .", return_tensors="pt")
    with torch.inference_mode():
        exact_out = mm_gdino.model(**inputs)
        fast_out = fast.model(**{k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in inputs.items()})
    a, b = exact_out.encoder_last_hidden_state_vision.flatten(), fast_out.encoder_last_hidden_state_vision.float().flatten()
    assert np.corrcoef(a.numpy(), b.numpy())[0, 1] > 0.99
    result = fast.detect([image], "cat, sofa", box_threshold=0.0, text_threshold=0.0)[0]
    assert len(result) == 50 and np.isfinite(result.xyxy).all() and np.isfinite(result.box_scores).all()
    assert set(result.labels) <= {"cat", "sofa"}


def test_a_folder_of_another_model_type_is_a_clear_error(tmp_path, owlv2_dir, mm_gdino_dir):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(tmp_path / "bert")
    with pytest.raises(ModelLoadError, match=r"'bert' model, which is not a detector.*OWLv2"):
        load_detector(tmp_path / "bert")
    with pytest.raises(ModelLoadError, match=r"'owlv2' model, not Grounding DINO or MM-Grounding-DINO.*load_detector"):
        GroundingDinoDetector(owlv2_dir, device="cpu")
    with pytest.raises(ModelLoadError, match=r"'mm-grounding-dino' model, not OWLv2.*load_detector"):
        Owlv2Detector(mm_gdino_dir, device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json naming a model_type.*save_pretrained"):
        load_detector(tmp_path / "empty")


class _RunsCode:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


@pytest.mark.parametrize("family", ["owlv2", "mm_gdino"])
def test_pickled_weights_holding_objects_are_refused(family, request, tmp_path, capsys):
    folder = request.getfixturevalue(f"{family}_dir")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.json").write_text((folder / "config.json").read_text())
    torch.save({"weight": torch.zeros(1), "payload": _RunsCode()}, copy / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="Refused to load.*safetensors"):
        load_detector(copy, device="cpu")
    assert "unpickled code ran" not in capsys.readouterr().out


def test_missing_models_offline_name_model_cache_and_fix(tmp_path):
    code = (
        "from lang_sam.families.detectors import load_detector\n"
        "for name in ['owlv2-base-patch16-ensemble', 'mm-grounding-dino-tiny', 'someone/unknown-detector']:\n"
        "    try:\n"
        "        load_detector(name, device='cpu')\n"
        "    except Exception as error:\n"
        "        print(type(error).__name__, error)\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    lines = completed.stdout.splitlines()
    assert len(lines) == 3, completed.stdout + completed.stderr
    repos = ["google/owlv2-base-patch16-ensemble", DETECTORS["mm-grounding-dino-tiny"].repo_id, "someone/unknown-detector"]
    for line, repo in zip(lines, repos):
        assert line.startswith("ModelLoadError") and repo in line
        assert str(tmp_path / "hf") in line and "local copy" in line

