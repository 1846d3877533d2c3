"""ObjectPrompt: one object named by a box, points, an earlier mask, or a mix; never a placeholder box."""

from __future__ import annotations

import numpy as np
import pytest

from lang_sam.errors import InvalidPromptError
from lang_sam.vocabulary import ObjectPrompt


def test_a_box_alone_is_box_only_and_points_or_a_mask_are_not():
    assert ObjectPrompt(box=[1, 2, 3, 4]).is_box_only
    clicked = ObjectPrompt(points=[[5, 6]], labels=[1])
    assert not clicked.is_box_only and clicked.box is None
    assert clicked.points.dtype == np.float32 and clicked.points.shape == (1, 2) and clicked.labels.dtype == np.int64
    refined = ObjectPrompt(box=[0, 0, 9, 9], points=[[5, 6], [1, 1]], labels=[1, 0], mask_logits=np.zeros((1, 256, 256)))
    assert refined.mask_logits.shape == (256, 256) and refined.labels.tolist() == [1, 0]


@pytest.mark.parametrize("fields, message", [
    ({}, "a box or points"),
    ({"mask_logits": np.zeros((256, 256))}, "a box or points"),
    ({"points": [[1, 1]]}, "go together"),
    ({"points": [[1, 1], [2, 2]], "labels": [1]}, "one label each"),
    ({"points": [[1, 1]], "labels": [2]}, "1 \\(object\\) or 0"),
    ({"points": np.zeros((0, 2)), "labels": []}, "one or more points"),
    ({"box": [np.nan] * 4}, "finite"),
    ({"box": [5, 5, 1, 1]}, "x2 < x1"),
    ({"box": [1, 2, 3]}, "shape \\(4,\\)"),
    ({"box": [0, 0, 9, 9], "points": [[1, 1]], "labels": [1], "mask_logits": np.zeros(5)}, "shape \\(256, 256\\)"),
])
def test_an_incomplete_prompt_is_refused(fields, message):
    with pytest.raises(InvalidPromptError, match=message):
        ObjectPrompt(**fields)
