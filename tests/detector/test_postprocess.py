"""Post-processing on hand-made logits: exactly which boxes and labels come out."""

from __future__ import annotations

import math

import pytest
import torch

from lang_sam.detector.postprocess import class_wise_nms, select_detections, to_pixel_xyxy


def logit(probability: float) -> float:
    return math.log(probability / (1 - probability))


# Caption "[CLS] car . traffic light . [SEP]": car is token 1, traffic light tokens 3-4.
SPANS = [(1, 2), (3, 5)]
IMAGE_SIZE = (100, 200)  # (H, W)


def make_logits(rows: list[dict[int, float]], tokens: int = 7) -> torch.Tensor:
    logits = torch.full((len(rows), tokens), logit(0.01))
    for query, probabilities in enumerate(rows):
        for token, probability in probabilities.items():
            logits[query, token] = logit(probability)
    return logits


BOXES = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.25, 0.5, 0.5, 1.0], [0.9, 0.9, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0]])


def test_labels_come_from_the_best_scoring_span_and_both_thresholds_apply():
    logits = make_logits(
        [
            {1: 0.9, 3: 0.2},  # car, 0.9
            {3: 0.35, 4: 0.6},  # traffic light, best token 0.6
            {0: 0.95, 1: 0.2},  # box score 0.95 from [CLS], but car only 0.2 < text threshold
            {1: 0.28, 4: 0.1},  # box score 0.28 < box threshold
        ]
    )
    boxes, scores, class_ids, class_scores = select_detections(logits, BOXES, SPANS, 0.3, 0.25, IMAGE_SIZE)
    assert class_ids.tolist() == [0, 1]
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.6]))
    torch.testing.assert_close(class_scores, torch.tensor([0.9, 0.6]))
    torch.testing.assert_close(boxes, torch.tensor([[80.0, 40.0, 120.0, 60.0], [0.0, 0.0, 100.0, 100.0]]))


def test_box_score_counts_every_caption_token():
    logits = make_logits([{2: 0.8, 1: 0.3}])  # the "." token scores highest
    _, scores, class_ids, class_scores = select_detections(logits, BOXES[:1], SPANS, 0.3, 0.25, IMAGE_SIZE)
    torch.testing.assert_close(scores, torch.tensor([0.8]))
    torch.testing.assert_close(class_scores, torch.tensor([0.3]))
    assert class_ids.tolist() == [0]


def test_thresholds_are_inclusive_and_results_sorted():
    logits = make_logits([{1: 0.4}, {4: 0.7}, {1: 0.5}])
    _, scores, class_ids, _ = select_detections(logits, BOXES[:3], SPANS, 0.4, 0.4, IMAGE_SIZE)
    assert class_ids.tolist() == [1, 0, 0]
    torch.testing.assert_close(scores, torch.tensor([0.7, 0.5, 0.4]))


def test_nothing_kept_gives_empty_tensors_of_the_right_shape():
    logits = make_logits([{1: 0.1}, {4: 0.2}])
    boxes, scores, class_ids, class_scores = select_detections(logits, BOXES[:2], SPANS, 0.3, 0.25, IMAGE_SIZE)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and class_ids.shape == (0,) and class_scores.shape == (0,)


def test_boxes_are_clipped_to_the_image():
    boxes = to_pixel_xyxy(torch.tensor([[0.9, 0.9, 0.4, 0.4], [0.0, 0.0, 0.5, 0.5]]), IMAGE_SIZE)
    torch.testing.assert_close(boxes, torch.tensor([[140.0, 70.0, 200.0, 100.0], [0.0, 0.0, 50.0, 25.0]]))


def test_nms_suppresses_overlaps_within_a_class_only():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    class_ids = torch.tensor([0, 0, 1, 0])
    assert class_wise_nms(boxes, scores, class_ids, iou_threshold=0.5).tolist() == [0, 2, 3]
    assert class_wise_nms(boxes, scores, class_ids, iou_threshold=0.95).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_logits_are_read_in_float32(dtype):
    logits = make_logits([{1: 0.9}]).to(dtype)
    _, scores, _, _ = select_detections(logits, BOXES[:1].to(dtype), SPANS, 0.3, 0.25, IMAGE_SIZE)
    assert scores.dtype == torch.float32
