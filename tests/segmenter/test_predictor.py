"""SamPredictor behaviour of its own: chunked decoding, outputs, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lang_sam import InvalidImageError, InvalidPromptError
from lang_sam.segmenter import SamPredictor
from lang_sam.segmenter.build import build_sam_from_architecture
from lang_sam.segmenter.processing import resize_image, resized_shape, transform_boxes
from tests.conftest import SMALL_ARCHITECTURE, random_sam_state_dict, synthetic_image


@pytest.fixture(scope="module")
def predictor():
    model = build_sam_from_architecture(SMALL_ARCHITECTURE)
    model.load_state_dict(random_sam_state_dict(SMALL_ARCHITECTURE, seed=21))
    predictor = SamPredictor(model.eval())
    predictor.set_image(synthetic_image(300, 500, seed=22))
    return predictor


def random_boxes(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 1, size=(count, 2, 2)) * [width, height]
    return torch.tensor(np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1), dtype=torch.float32)


def test_chunked_batch_equals_boxes_one_by_one(predictor):
    boxes = random_boxes(70, 300, 500)
    predictor.decoder_batch_size = 16
    masks, iou, low_res = predictor.predict_torch(boxes=boxes, multimask_output=False, prompts_in_image_pixels=True)
    assert masks.shape == (70, 1, 300, 500) and masks.dtype == torch.bool
    assert iou.shape == (70, 1) and low_res.shape == (70, 1, 256, 256)
    for index in range(0, 70, 7):
        single_masks, single_iou, single_low_res = predictor.predict_torch(
            boxes=boxes[index : index + 1], multimask_output=False, prompts_in_image_pixels=True
        )
        torch.testing.assert_close(low_res[index : index + 1], single_low_res, atol=1e-4, rtol=0)
        torch.testing.assert_close(iou[index : index + 1], single_iou, atol=1e-4, rtol=0)
        assert (masks[index : index + 1] == single_masks).float().mean() >= 0.9999


def test_decoder_batch_size_does_not_change_results(predictor):
    boxes = random_boxes(10, 300, 500, seed=1)
    outputs = []
    for batch_size in (1, 3, 64):
        predictor.decoder_batch_size = batch_size
        outputs.append(predictor.predict_torch(boxes=boxes, prompts_in_image_pixels=True))
    for other in outputs[1:]:
        torch.testing.assert_close(other[2], outputs[0][2], atol=1e-4, rtol=0)


def test_logits_threshold_to_the_boolean_masks(predictor):
    box = np.array([50, 40, 400, 260])
    masks, scores, low_res = predictor.predict(box=box, multimask_output=True)
    logits, logit_scores, _ = predictor.predict(box=box, multimask_output=True, return_logits=True)
    assert masks.shape == logits.shape == (3, 300, 500)
    assert masks.dtype == bool and logits.dtype == np.float32
    np.testing.assert_array_equal(masks, logits > 0)
    np.testing.assert_array_equal(scores, logit_scores)
    assert low_res.shape == (3, 256, 256)


def test_single_mask_is_the_first_token_not_a_multimask_one(predictor):
    box = np.array([50, 40, 400, 260])
    _, _, single = predictor.predict(box=box, multimask_output=False)
    _, _, multi = predictor.predict(box=box, multimask_output=True)
    assert single.shape == (1, 256, 256)
    assert not any(np.allclose(single[0], m) for m in multi)


def test_predict_before_set_image_raises():
    model = build_sam_from_architecture(SMALL_ARCHITECTURE).eval()
    with pytest.raises(InvalidImageError, match="set_image"):
        SamPredictor(model).predict(box=np.array([0, 0, 10, 10]))


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 4), dtype=np.uint8),
        np.zeros((10, 10, 3), dtype=np.float32),
        np.zeros((0, 10, 3), dtype=np.uint8),
        "image.png",
    ],
    ids=["grayscale", "rgba", "float", "empty", "path"],
)
def test_set_image_rejects_what_it_cannot_use(image):
    model = build_sam_from_architecture(SMALL_ARCHITECTURE).eval()
    with pytest.raises(InvalidImageError, match="RGB|empty"):
        SamPredictor(model).set_image(image)


def test_malformed_points_are_rejected(predictor):
    with pytest.raises(InvalidPromptError, match="together"):
        predictor.predict(point_coords=np.array([[1, 2]]))
    with pytest.raises(InvalidPromptError, match=r"\(N, 2\)"):
        predictor.predict(point_coords=np.array([1, 2, 3]), point_labels=np.array([1]))


def test_reset_image_forgets_the_embedding(predictor):
    other = SamPredictor(predictor.model)
    other.set_image(synthetic_image(20, 30))
    assert other.is_image_set
    other.reset_image()
    assert not other.is_image_set


def test_resize_and_box_transform_follow_the_longest_side():
    assert resized_shape((768, 1024)) == (768, 1024)
    assert resized_shape((1200, 480)) == (1024, 410)
    assert resized_shape((40, 60)) == (683, 1024)
    boxes = transform_boxes(np.array([[0, 0, 60, 40]]), (40, 60))
    np.testing.assert_allclose(boxes, [[0, 0, 1024, 683]], atol=0.5)


def test_set_torch_image_takes_the_resized_image_as_segment_anything_does(predictor):
    image = synthetic_image(300, 500, seed=22)
    other = SamPredictor(predictor.model)
    other.set_torch_image(torch.from_numpy(resize_image(image)).permute(2, 0, 1)[None], (300, 500))
    torch.testing.assert_close(other.get_image_embedding(), predictor.get_image_embedding(), atol=0, rtol=0)
    assert (other.original_size, other.input_size) == ((300, 500), resized_shape((300, 500)))
    with pytest.raises(InvalidImageError, match=r"resized to \(1, 3, 614, 1024\)"):
        other.set_torch_image(torch.zeros(1, 3, 300, 500), (300, 500))
