"""The ground-floor vocabulary: Thresholds checked when made, its defaults the ones every entry point uses."""

from __future__ import annotations

import inspect
import math

import pytest

from lang_sam.errors import InvalidOptionError
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD, Thresholds


def test_defaults_are_written_once_and_read_by_every_entry_point():
    from lang_sam.datasets.labeling import LabelJob
    from lang_sam.interfaces.cli import build_parser
    from lang_sam.pipeline import LangSAM
    from lang_sam.video.tracker import track

    assert (Thresholds().box, Thresholds().text) == (BOX_THRESHOLD, TEXT_THRESHOLD) == (0.3, 0.25)
    predict = inspect.signature(LangSAM.predict).parameters
    assert (predict["box_threshold"].default, predict["text_threshold"].default) == (BOX_THRESHOLD, TEXT_THRESHOLD)
    tracking = inspect.signature(track).parameters
    assert (tracking["box_threshold"].default, tracking["text_threshold"].default) == (BOX_THRESHOLD, TEXT_THRESHOLD)
    labeling = {field.name: field.default for field in LabelJob.__dataclass_fields__.values()}
    assert (labeling["box_threshold"], labeling["text_threshold"]) == (BOX_THRESHOLD, TEXT_THRESHOLD)
    for command in (["predict", "a.jpg", "--prompt", "cat"], ["label", "photos", "--classes", "cat", "--out", "out"]):
        args = build_parser().parse_args(command)
        assert (args.box_threshold, args.text_threshold) == (BOX_THRESHOLD, TEXT_THRESHOLD)


@pytest.mark.parametrize(("values", "named"), [
    ({"box": 1.01}, "box_threshold"), ({"box": -0.1}, "box_threshold"), ({"text": math.nan}, "text_threshold"),
    ({"text": "0.3"}, "text_threshold"), ({"box": True}, "box_threshold"), ({"nms_iou": 2}, "nms_iou_threshold"),
    ({"max_detections": -1}, "max_detections"), ({"max_detections": 2.5}, "max_detections"),
    ({"max_detections": True}, "max_detections"),
])
def test_a_value_out_of_range_is_refused_by_name(values, named):
    with pytest.raises(InvalidOptionError, match=named):
        Thresholds(**values)


def test_the_edges_of_each_range_are_kept():
    assert Thresholds(box=0, text=1, nms_iou=0, max_detections=0) == Thresholds(0.0, 1.0, 0.0, 0)
    assert Thresholds(box=1, text=0, nms_iou=1).max_detections is None
