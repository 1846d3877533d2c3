"""Following clicked objects through a video with SAM 3's tracker (transformers' Sam3TrackerVideoModel,
loaded alone from a SAM 3 video checkpoint laid out as facebook/sam3 is) through follow_clicks,
against the model driven directly with the same clicks on frame 0: the same masks on every frame in
float32, as TrackedFrames (an object whose mask is empty is not on the frame). Clicks that are not clicks are clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from lang_sam.errors import InvalidPromptError, ModelLoadError
from lang_sam.families.loading import load_click_tracker
from lang_sam.geometry import mask_to_box
from lang_sam.video.clicks import follow_clicks
from lang_sam.vocabulary import ObjectPrompt
from tests.video.conftest import moving_squares, streamed_by_transformers
from tests.video.test_sam3_video import save_tiny_sam3_video

FRAMES = 5
# object 1: a click on the red square and one off it; object 2: one click on the green square
CLICKS = {1: ObjectPrompt(points=np.array([[8, 10], [40, 20]], np.float32), labels=np.array([1, 0])),
          2: ObjectPrompt(points=np.array([[56, 38]], np.float32), labels=np.array([1]))}


@pytest.fixture(scope="module")
def sam3_video_dir(tmp_path_factory):
    return save_tiny_sam3_video(tmp_path_factory.mktemp("tiny-sam3-video"))


@pytest.fixture(scope="module")
def tracker(sam3_video_dir):
    return load_click_tracker(sam3_video_dir, device="cpu", dtype="float32")


def test_clicked_objects_follow_as_sam3_tracker_video_driven_directly(sam3_video_dir, tracker):
    from transformers import Sam3TrackerVideoModel, Sam3TrackerVideoProcessor

    model = Sam3TrackerVideoModel.from_pretrained(sam3_video_dir).eval()
    processor = Sam3TrackerVideoProcessor.from_pretrained(sam3_video_dir)
    frames = moving_squares(FRAMES)
    inputs = {"input_points": [[CLICKS[i].points.tolist() for i in CLICKS]], "input_labels": [[CLICKS[i].labels.tolist() for i in CLICKS]]}
    reference = streamed_by_transformers(model, processor, frames, {0: (list(CLICKS), inputs)})
    assert type(tracker.model).__name__ == "Sam3TrackerVideoModel" and tracker.family == "sam3_video"
    ours = list(follow_clicks(frames, CLICKS, tracker))
    assert len(ours) == FRAMES
    for frame, expected in zip(ours, reference):
        assert set(expected) == {1, 2}, frame.index
        assert_frame_holds(frame, expected)
    seen = [mask for masks in reference for mask in masks.values()]
    assert any(mask.any() for mask in seen) and not all(mask.all() for mask in seen)  # the comparison saw both values


def assert_frame_holds(frame, expected: dict[int, np.ndarray], labels: dict[int, str] | None = None) -> None:
    """frame (a TrackedFrame) holds exactly the non-empty masks of expected (id -> (H, W) mask), each
    with its box around the mask, score 1.0 and its label (default "object")."""
    present = {object_id: mask for object_id, mask in expected.items() if mask.any()}
    assert [item.id for item in frame.objects] == list(present), frame.index
    for item in frame.objects:
        assert item.mask.shape == expected[item.id].shape and (item.mask == expected[item.id]).all(), (frame.index, item.id)
        assert (item.box == mask_to_box(expected[item.id])).all() and item.score == 1.0
        assert item.label == (labels or {}).get(item.id, "object")


def test_clicks_that_are_not_clicks_on_the_frame_are_refused(tracker):
    frames = moving_squares(2)
    outside = {1: ObjectPrompt(points=np.array([[80, 10]], np.float32), labels=np.array([1]))}
    with pytest.raises(InvalidPromptError, match=r"click \[80.0, 10.0\] is outside the 64x48 image"):
        next(follow_clicks(frames, outside, tracker))
    with pytest.raises(InvalidPromptError, match="points with labels alone.*add_objects"):
        next(follow_clicks(frames, {1: ObjectPrompt(box=np.array([2, 4, 14, 16], np.float32))}, tracker))
    with pytest.raises(InvalidPromptError, match="at least one clicked object"):
        next(follow_clicks(frames, {}, tracker))


def test_an_image_only_model_is_refused_as_a_click_tracker_naming_what_tracks(tmp_path):
    from tests.families.conftest import save_tiny_segmenter

    with pytest.raises(ModelLoadError, match="'sam3_video'.*image-only EdgeTAM.*yonigozlan/EdgeTAM-hf"):
        load_click_tracker(save_tiny_segmenter("edgetam", tmp_path / "edgetam"), device="cpu")
