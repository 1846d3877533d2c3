"""The SAM 2.1 video adapter against transformers' Sam2VideoModel driven directly (the documented
streaming loop, nothing dropped): the same masks on every frame, though the adapter prunes the
session to what the model still reads, runs objects added mid-video on a second forward, and
removes ended objects."""

from __future__ import annotations

import numpy as np
import pytest

from lang_sam.errors import ModelLoadError
from lang_sam.families.loading import load_video_segmenter
from lang_sam.families.sam2_video import Sam2VideoSegmenter
from tests.video.conftest import box_prompt, moving_squares, streamed_by_transformers

FRAMES = 12
FIRST_BOX = np.array([2, 4, 14, 16], np.float32)  # the red square on frame 0
LATE_BOX = np.array([40, 30, 60, 46], np.float32)
LATE_FRAME = 5


@pytest.fixture(scope="module")
def segmenter(tiny_video_dir):
    return Sam2VideoSegmenter(tiny_video_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def reference(tiny_video_dir):
    """Per frame, {object id: (H, W) mask} from transformers alone: object 1 prompted on frame 0,
    object 2 on LATE_FRAME, every frame streamed into one session."""
    from transformers import Sam2VideoModel, Sam2VideoProcessor

    model = Sam2VideoModel.from_pretrained(tiny_video_dir).eval()
    processor = Sam2VideoProcessor.from_pretrained(tiny_video_dir)
    return streamed_by_transformers(model, processor, moving_squares(FRAMES),
                                    {0: box_prompt(1, FIRST_BOX), LATE_FRAME: box_prompt(2, LATE_BOX)})


def next_frame(stream, index: int, frame: np.ndarray) -> dict[int, np.ndarray]:
    """The stream's masks on frame index, prompting object 1 on frame 0 and object 2 on LATE_FRAME as the reference does."""
    masks = stream.add_frame(frame)
    if index == 0:
        masks = stream.add_objects({1: FIRST_BOX})
    if index == LATE_FRAME:
        masks = {**masks, **stream.add_objects({2: LATE_BOX})}
    return masks


def test_streamed_masks_equal_transformers_with_a_bounded_session(segmenter, reference):
    stream = segmenter.start((48, 64))
    history = max(segmenter.model.config.num_maskmem, segmenter.model.config.max_object_pointers_in_encoder)
    for index, frame in enumerate(moving_squares(FRAMES)):
        masks = next_frame(stream, index, frame)
        assert set(masks) == set(reference[index])
        for object_id, mask in masks.items():
            assert mask.shape == (48, 64) and (mask == reference[index][object_id]).all(), (index, object_id)
        assert len(stream.session.processed_frames) == 1  # only the current frame's pixels
        assert all(len(outputs["non_cond_frame_outputs"]) <= history for outputs in stream.session.output_dict_per_obj.values())
    assert any(mask.any() for masks in reference for mask in masks.values())  # the comparison saw pixels


def test_segment_boxes_is_the_first_mask_a_new_object_gets(segmenter):
    frame = moving_squares(1)[0]
    stream = segmenter.start((48, 64))
    stream.add_frame(frame)
    boxes = np.stack([FIRST_BOX, LATE_BOX])
    from_boxes = stream.segment_boxes(boxes)
    added = stream.add_objects({7: FIRST_BOX, 9: LATE_BOX})
    assert from_boxes.shape == (2, 48, 64)
    assert (from_boxes[0] == added[7]).all() and (from_boxes[1] == added[9]).all()
    assert stream.segment_boxes(np.zeros((0, 4), np.float32)).shape == (0, 48, 64)


def test_a_removed_object_is_forgotten_and_the_others_go_on_unchanged(segmenter, reference):
    stream = segmenter.start((48, 64))
    for index, frame in enumerate(moving_squares(FRAMES)):
        masks = next_frame(stream, index, frame)
        if index == LATE_FRAME + 2:
            stream.remove_objects([1])
        if index > LATE_FRAME + 2:
            assert set(masks) == {2} and (masks[2] == reference[index][2]).all()
    assert stream.session.obj_ids == [2] and list(stream.session.output_dict_per_obj) == [0]


def test_an_image_only_sam2_folder_is_refused_with_what_to_use(tmp_path):
    from tests.families.conftest import save_tiny_segmenter

    with pytest.raises(ModelLoadError, match="image-only SAM 2.*facebook/sam2.1-hiera-tiny"):
        Sam2VideoSegmenter(save_tiny_segmenter("sam2", tmp_path))
    with pytest.raises(ModelLoadError, match="sam2.1-hiera-tiny"):
        load_video_segmenter("vit_b")
