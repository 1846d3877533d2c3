"""LangSAMResult is a view of Detections: both directions share the arrays and keep every value."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lang_sam.pipeline.prompts import check_user_prompts, name_prompts
from lang_sam.results import LangSAMResult
from lang_sam.vocabulary import Detections
from tests.vocabulary.test_detections import SIZE, random_detections


def test_the_view_of_detections_shares_their_arrays_and_reads_back_the_same():
    detections = random_detections(4, tracked=False).with_masks(random_detections(4).dense_masks())
    detections = Detections(xyxy=detections.xyxy, image_size=SIZE, masks=detections.masks, box_scores=detections.box_scores,
                            mask_scores=detections.mask_scores, class_ids=detections.class_ids, classes=detections.classes,
                            data={"low_res_logits": np.random.default_rng(0).random((4, 256, 256), np.float32)})
    result = LangSAMResult.of(detections)
    assert result.masks is detections.masks and result.boxes is detections.xyxy and result.logits is detections.box_scores
    assert result.phrases == detections.labels and result.num_detections == 4 and result.image_size == SIZE
    back = result.detections
    assert back.masks is detections.masks and back.data["low_res_logits"] is detections.data["low_res_logits"]
    np.testing.assert_array_equal(back.class_ids, detections.class_ids)
    masks, boxes, phrases, logits = result
    assert phrases == detections.labels and masks is detections.masks


def test_a_changed_result_gives_changed_detections():
    result = LangSAMResult.of(random_detections(3, tracked=False))
    flipped = replace(result, masks=~result.masks)
    np.testing.assert_array_equal(flipped.detections.dense_masks(), ~result.masks)
    assert flipped.to_supervision().mask.sum() == (~result.masks).sum()


def test_clicks_join_the_smallest_box_holding_the_first_object_point_else_come_first():
    found = Detections(xyxy=[[0, 0, 50, 50], [10, 10, 30, 30]], image_size=SIZE, box_scores=[0.9, 0.8],
                       class_ids=[0, 1], classes=("car", "wheel"))
    inside = name_prompts(found, check_user_prompts([[20, 20], [45, 5]], [1, 0], [[1, 1, 5, 5]], None, SIZE), "mine")
    assert inside.names == ["mine", "car", "wheel"] and inside.classes == ["car", "wheel", "mine"]
    assert inside.scores.tolist() == [1.0, np.float32(0.9), np.float32(0.8)]
    assert inside.prompts[2].points is not None and inside.prompts[2].box.tolist() == [10, 10, 30, 30]
    assert [p.is_box_only for p in inside.prompts] == [True, True, False]
    outside = name_prompts(found, check_user_prompts([[55, 35]], None, None, None, SIZE), "car")
    assert outside.names == ["car", "car", "wheel"] and outside.classes == ["car", "wheel"]
    assert outside.prompts[0].box is None and outside.prompts[0].points.tolist() == [[55, 35]]


def test_supervision_merges_results_of_different_classes_and_images():
    import supervision as sv

    first = LangSAMResult.of(random_detections(3, tracked=False))
    other = random_detections(2, seed=4, tracked=False)
    second = LangSAMResult.of(Detections(xyxy=other.xyxy, image_size=SIZE, masks=other.masks, box_scores=other.box_scores,
                                         mask_scores=other.mask_scores, class_ids=[0, 0], classes=("person",)))
    merged = sv.Detections.merge([first.to_supervision(), second.to_supervision()])
    assert len(merged) == 5 and list(merged.data["class_name"]) == first.phrases + ["person", "person"]
