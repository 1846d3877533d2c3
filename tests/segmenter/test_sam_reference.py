"""lang_sam's SAM against Meta's segment-anything with identical random weights.

Tolerance (fp32), set by what was measured: low-res logits and IoU predictions within 1e-5 (largest
difference seen 6.6e-7, also with AVX2-only kernels), image embeddings within 5e-5 (seen 1.2e-5),
masks at least 99.9% equal.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor as ReferencePredictor
from segment_anything import sam_model_registry

from lang_sam.registry import SAM_MODELS
from lang_sam.segmenter import SamPredictor, build_sam
from lang_sam.segmenter.build import build_sam_from_architecture
from tests.conftest import SMALL_ARCHITECTURE, random_sam_state_dict, reference_sam, shared_image, synthetic_image

LOGIT_TOLERANCE = 1e-5
MASK_AGREEMENT = 0.999

# (height, width): 1024x768 landscape, 480x1200 portrait, and a tiny 60x40 image.
IMAGE_SIZES = [(768, 1024), (1200, 480), (40, 60)]

# Prompts in coordinates relative to the image size, so each fits every image.
PROMPTS = {
    "one_point": dict(point_coords=[[0.5, 0.4]], point_labels=[1]),
    "points_with_negatives": dict(point_coords=[[0.3, 0.3], [0.6, 0.7], [0.8, 0.2]], point_labels=[1, 0, 0]),
    "one_box": dict(box=[0.1, 0.2, 0.6, 0.8]),
    "box_and_points": dict(box=[0.2, 0.1, 0.9, 0.7], point_coords=[[0.5, 0.5], [0.25, 0.15]], point_labels=[1, 0]),
}


def absolute_prompt(prompt: dict, size: tuple[int, int]) -> dict:
    height, width = size
    result = {}
    if "point_coords" in prompt:
        result["point_coords"] = np.array(prompt["point_coords"]) * [width, height]
        result["point_labels"] = np.array(prompt["point_labels"])
    if "box" in prompt:
        result["box"] = np.array(prompt["box"]) * [width, height, width, height]
    return result


def assert_same_outputs(reference, ours) -> None:
    ref_masks, ref_iou, ref_low_res = (np.asarray(x) for x in reference)
    our_masks, our_iou, our_low_res = (np.asarray(x) for x in ours)
    assert our_masks.shape == ref_masks.shape and our_masks.dtype == ref_masks.dtype
    assert our_low_res.shape == ref_low_res.shape
    np.testing.assert_allclose(our_low_res, ref_low_res, atol=LOGIT_TOLERANCE, rtol=0)
    np.testing.assert_allclose(our_iou, ref_iou, atol=LOGIT_TOLERANCE, rtol=0)
    agreement = (our_masks == ref_masks).mean()
    assert agreement >= MASK_AGREEMENT, f"only {agreement:.5f} of mask pixels agree"


@pytest.fixture(scope="module", params=IMAGE_SIZES, ids=lambda size: f"{size[1]}x{size[0]}")
def predictor_pair(request):
    """Our predictor and the reference's, same weights, same image already set."""
    size = request.param
    state_dict = random_sam_state_dict(SMALL_ARCHITECTURE)
    ours = build_sam_from_architecture(SMALL_ARCHITECTURE)
    ours.load_state_dict(state_dict, strict=True)
    reference = ReferencePredictor(reference_sam(SMALL_ARCHITECTURE, state_dict))
    predictor = SamPredictor(ours.eval())
    image = synthetic_image(*size)
    reference.set_image(image)
    predictor.set_image(image)
    return reference, predictor, size


def test_image_embeddings_match(predictor_pair):
    reference, predictor, _ = predictor_pair
    torch.testing.assert_close(predictor.get_image_embedding(), reference.get_image_embedding(), atol=5e-5, rtol=0)
    assert predictor.original_size == tuple(reference.original_size)
    assert predictor.input_size == tuple(reference.input_size)


@pytest.mark.parametrize("multimask_output", [True, False], ids=["multimask", "single"])
@pytest.mark.parametrize("prompt_name", list(PROMPTS))
def test_prompts_match(predictor_pair, prompt_name, multimask_output):
    reference, predictor, size = predictor_pair
    prompt = absolute_prompt(PROMPTS[prompt_name], size)
    assert_same_outputs(
        reference.predict(**prompt, multimask_output=multimask_output),
        predictor.predict(**prompt, multimask_output=multimask_output),
    )


@pytest.mark.parametrize("multimask_output", [True, False], ids=["multimask", "single"])
def test_mask_input_matches(predictor_pair, multimask_output):
    reference, predictor, size = predictor_pair
    first = absolute_prompt(PROMPTS["one_box"], size)
    _, scores, low_res = reference.predict(**first, multimask_output=True)
    mask_input = low_res[np.argmax(scores)][None]
    refine = absolute_prompt(PROMPTS["points_with_negatives"], size)
    assert_same_outputs(
        reference.predict(**refine, mask_input=mask_input, multimask_output=multimask_output),
        predictor.predict(**refine, mask_input=mask_input, multimask_output=multimask_output),
    )


def test_batch_of_boxes_matches(predictor_pair):
    reference, predictor, size = predictor_pair
    height, width = size
    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 1, size=(12, 2, 2)) * [width, height]
    boxes = torch.tensor(np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1), dtype=torch.float32)
    transformed = reference.transform.apply_boxes_torch(boxes, size)
    for multimask_output in (False, True):
        expected = reference.predict_torch(None, None, transformed, multimask_output=multimask_output)
        # Chunks of 5 exercise the chunked path, with a short last chunk.
        predictor.decoder_batch_size = 5
        actual = predictor.predict_torch(boxes=transformed, multimask_output=multimask_output)
        assert_same_outputs([t.numpy() for t in expected], [t.numpy() for t in actual])


def test_batch_of_point_prompts_matches(predictor_pair):
    reference, predictor, size = predictor_pair
    height, width = size
    rng = np.random.default_rng(2)
    coords = torch.tensor(rng.uniform(0, 1, size=(9, 3, 2)) * [width, height], dtype=torch.float32)
    labels = torch.tensor(rng.integers(0, 2, size=(9, 3)))
    transformed = reference.transform.apply_coords_torch(coords, size)
    expected = reference.predict_torch(transformed, labels, multimask_output=True)
    actual = predictor.predict_torch(transformed, labels, multimask_output=True)
    assert_same_outputs([t.numpy() for t in expected], [t.numpy() for t in actual])


@pytest.mark.parametrize("photo", ["truck.jpg", "dogs.jpg", "groceries.jpg"])
def test_real_photos_match(photo):
    image = shared_image(photo)
    state_dict = random_sam_state_dict(SMALL_ARCHITECTURE, seed=3)
    ours = build_sam_from_architecture(SMALL_ARCHITECTURE)
    ours.load_state_dict(state_dict, strict=True)
    reference = ReferencePredictor(reference_sam(SMALL_ARCHITECTURE, state_dict))
    predictor = SamPredictor(ours.eval())
    reference.set_image(image)
    predictor.set_image(image)
    prompt = absolute_prompt(PROMPTS["box_and_points"], image.shape[:2])
    assert_same_outputs(reference.predict(**prompt), predictor.predict(**prompt))


def test_true_vit_b_from_checkpoint_file_matches(tmp_path):
    """The full vit_b architecture, both sides loading the same official-format .pth file."""
    checkpoint = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(random_sam_state_dict(SAM_MODELS["vit_b"].architecture, seed=4), checkpoint)
    reference = ReferencePredictor(sam_model_registry["vit_b"](checkpoint=str(checkpoint)).eval())
    predictor = SamPredictor(build_sam("vit_b", checkpoint=checkpoint))
    image = synthetic_image(768, 1024, seed=5)
    reference.set_image(image)
    predictor.set_image(image)
    torch.testing.assert_close(predictor.get_image_embedding(), reference.get_image_embedding(), atol=5e-5, rtol=0)

    prompt = absolute_prompt(PROMPTS["points_with_negatives"], image.shape[:2])
    assert_same_outputs(reference.predict(**prompt), predictor.predict(**prompt))
    boxes = torch.tensor([[100, 50, 600, 500], [0, 0, 1023, 767], [700, 300, 900, 760]] * 3, dtype=torch.float32)
    transformed = reference.transform.apply_boxes_torch(boxes, image.shape[:2])
    expected = reference.predict_torch(None, None, transformed, multimask_output=False)
    actual = predictor.predict_torch(boxes=transformed, multimask_output=False)
    assert_same_outputs([t.numpy() for t in expected], [t.numpy() for t in actual])


def test_bfloat16_encoder_and_decoder_stay_close_to_float32():
    state_dict = random_sam_state_dict(SMALL_ARCHITECTURE, seed=6)
    predictors = {}
    image = synthetic_image(768, 1024, seed=7)
    for dtype in (torch.float32, torch.bfloat16):
        model = build_sam_from_architecture(SMALL_ARCHITECTURE)
        model.load_state_dict(state_dict, strict=True)
        model.image_encoder.to(dtype)
        model.mask_decoder.to(dtype)
        predictors[dtype] = SamPredictor(model.eval())
        predictors[dtype].set_image(image)
    exact, fast = predictors[torch.float32], predictors[torch.bfloat16]
    assert fast.get_image_embedding().dtype == torch.float32
    embedding_error = (fast.get_image_embedding() - exact.get_image_embedding()).norm() / exact.get_image_embedding().norm()
    assert embedding_error < 0.05
    prompt = absolute_prompt(PROMPTS["one_box"], image.shape[:2])
    exact_masks, _, exact_low_res = exact.predict(**prompt)
    fast_masks, _, fast_low_res = fast.predict(**prompt)
    correlation = np.corrcoef(exact_low_res.ravel(), fast_low_res.ravel())[0, 1]
    assert correlation > 0.99
    assert (exact_masks == fast_masks).mean() > 0.97
    boxes = torch.tensor([[100, 50, 600, 500], [0, 0, 1023, 767], [700, 300, 900, 760]], dtype=torch.float32)
    exact_batch = exact.predict_torch(boxes=boxes, multimask_output=False, return_logits=True)
    fast_batch = fast.predict_torch(boxes=boxes, multimask_output=False, return_logits=True)
    assert all(tensor.dtype == torch.float32 for tensor in fast_batch)
    for exact_logits, fast_logits in zip(exact_batch[2], fast_batch[2]):
        assert np.corrcoef(exact_logits.ravel(), fast_logits.ravel())[0, 1] > 0.99
    assert ((exact_batch[0] > 0) == (fast_batch[0] > 0)).float().mean() > 0.97
    assert (exact_batch[1] - fast_batch[1]).abs().max() < 0.05
