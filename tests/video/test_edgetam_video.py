"""EdgeTAM video (transformers' EdgeTamVideoModel) through lang-sam's public loader against the model
driven directly (the documented streaming loop, nothing dropped): the same masks on every frame in
float32, with objects prompted on the first frame and mid-video; its registry entry and the refusal
of an image-only EdgeTAM folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lang_sam.errors import ModelLoadError
from lang_sam.families.loading import adapter_of, load_video_segmenter
from lang_sam.families.sam2_video import Sam2VideoSegmenter
from lang_sam.registry import FAMILY_MODELS, VIDEO_KINDS, VIDEO_SEGMENTER, names_of, resolve
from tests.video.conftest import box_prompt, moving_squares, save_tiny_edgetam_video, streamed_by_transformers

FRAMES = 6
PROMPTS = {0: (1, np.array([2, 4, 14, 16], np.float32)), 3: (2, np.array([40, 30, 60, 46], np.float32))}  # frame: (id, box)


@pytest.fixture(scope="module")
def edgetam_video_dir(tmp_path_factory):
    return save_tiny_edgetam_video(tmp_path_factory.mktemp("tiny-edgetam-video"))


@pytest.fixture(scope="module")
def reference(edgetam_video_dir):
    """Per frame, {object id: (H, W) mask} from transformers alone, in float32."""
    from transformers import EdgeTamVideoModel, Sam2VideoProcessor

    model = EdgeTamVideoModel.from_pretrained(edgetam_video_dir).eval()
    processor = Sam2VideoProcessor.from_pretrained(edgetam_video_dir)
    return streamed_by_transformers(model, processor, moving_squares(FRAMES),
                                    {index: box_prompt(*prompt) for index, prompt in PROMPTS.items()})


def test_tracked_masks_equal_edgetam_video_driven_directly(edgetam_video_dir, reference):
    segmenter = load_video_segmenter(checkpoint=edgetam_video_dir, device="cpu", dtype="float32")
    assert type(segmenter) is Sam2VideoSegmenter and type(segmenter.model).__name__ == "EdgeTamVideoModel"
    assert segmenter.family == "edgetam_video" and type(segmenter.processor).__name__ == "Sam2VideoProcessor"
    assert segmenter.model.dtype == torch.float32
    stream = segmenter.start((48, 64))
    for index, frame in enumerate(moving_squares(FRAMES)):
        masks = stream.add_frame(frame)
        if index in PROMPTS:
            object_id, box = PROMPTS[index]
            masks = {**masks, **stream.add_objects({object_id: box})}
        assert set(masks) == set(reference[index]), index
        for object_id, mask in masks.items():
            assert mask.shape == (48, 64) and (mask == reference[index][object_id]).all(), (index, object_id)
    seen = [mask for masks in reference for mask in masks.values()]
    assert any(mask.any() for mask in seen) and not all(mask.all() for mask in seen)  # the comparison saw both values


def test_edgetam_is_a_registry_name_that_tracks_video():
    entry = FAMILY_MODELS["edgetam"]
    assert (entry.repo_id, entry.licence) == ("yonigozlan/EdgeTAM-hf", "Apache-2.0")
    resolved = resolve("edgetam", VIDEO_KINDS)
    assert resolved.kind == VIDEO_SEGMENTER and adapter_of(resolved) is Sam2VideoSegmenter
    assert "edgetam" in names_of(VIDEO_KINDS)


def test_an_image_only_edgetam_folder_is_refused_with_what_to_use(tmp_path):
    from tests.families.conftest import save_tiny_segmenter

    with pytest.raises(ModelLoadError, match="image-only EdgeTAM.*yonigozlan/EdgeTAM-hf"):
        load_video_segmenter(checkpoint=save_tiny_segmenter("edgetam", tmp_path / "edgetam"), device="cpu")


def test_an_edgetam_video_folder_is_also_the_image_segmenter_it_holds(edgetam_video_dir):
    """EdgeTamModel reads the video model's weights (as Sam2Model reads SAM 2.1 video's): none is left random."""
    from lang_sam.families.loading import load_segmenter

    image = load_segmenter(checkpoint=edgetam_video_dir, device="cpu", dtype="float32")
    video = dict(load_video_segmenter(checkpoint=edgetam_video_dir, device="cpu", dtype="float32").model.named_parameters())
    assert image.family == "edgetam_video" and type(image.model).__name__ == "EdgeTamModel"
    for name, parameter in image.model.named_parameters():
        assert torch.equal(parameter, video[name]), name


def test_lang_sam_track_runs_edgetam(edgetam_video_dir, tiny_detector_dir, tmp_path, capsys):
    from lang_sam.interfaces.cli import main
    from tests.video.conftest import write_video
    from tests.video.test_track_cli import threshold_for

    clip = write_video(tmp_path / "clip.mp4", moving_squares(4), fps=10)
    threshold = threshold_for(tiny_detector_dir, moving_squares(1)[0], "square", 2)
    code = main(["track", str(clip), "--prompt", "square", "--out", str(tmp_path / "out"), "--detector", str(tiny_detector_dir),
                 "--sam-checkpoint", str(edgetam_video_dir), "--box-threshold", str(threshold), "--text-threshold", "0",
                 "--redetect-every", "2", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    lines = (tmp_path / "out" / "clip.jsonl").read_text().splitlines()
    assert len(lines) == 4 and (tmp_path / "out" / "clip.mp4").stat().st_size
