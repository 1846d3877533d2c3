"""Clicked objects through LangSAM.track (the same call as a text prompt, with predict's points and
point_labels) and lang-sam track --points: SAM 2.1 and EdgeTAM video's masks equal Sam2VideoModel
and EdgeTamVideoModel driven directly with the same clicks on the first frame read, in float32, as TrackedFrames, and the
command writes those frames; clicks that are not clicks are clear errors before any model loads."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from lang_sam.errors import InvalidOptionError, InvalidPromptError
from lang_sam.interfaces.cli import main
from lang_sam.video.clicks import clicked_objects
from tests.video.conftest import moving_squares, read_with_pyav, streamed_by_transformers, write_video
from tests.video.test_sam3_clicks_video import assert_frame_holds

FRAMES = 6
# object 1 (red square): a click on it and one off it; object 2 (green square): one click on it
POINTS = [[[8, 10], [40, 20]], [[56, 38]]]
POINT_LABELS = [[1, 0], [1]]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clicks-clip") / "clip.mp4", moving_squares(FRAMES), fps=10)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A LangSAM whose image models never run here: tracking clicks needs the video model alone."""
    from lang_sam.families.transformers_sam import TransformersSegmenter
    from lang_sam.pipeline import LangSAM
    from tests.families.conftest import save_tiny_segmenter

    folder = save_tiny_segmenter("sam2", tmp_path_factory.mktemp("sam2"))
    return LangSAM.from_parts(TransformersSegmenter(folder, device="cpu", dtype="float32"), None)


def sam2_video_reference(folder, frames: list[np.ndarray], points, point_labels, model_class: str = "Sam2VideoModel",
                         ) -> list[dict[int, np.ndarray]]:
    """Per frame, id -> mask from a SAM 2 style video model (model_class) and its Sam2VideoProcessor
    alone, objects 1, 2, ... clicked on frames[0]."""
    import transformers
    from transformers import Sam2VideoProcessor

    model = getattr(transformers, model_class).from_pretrained(folder, torch_dtype="float32").eval()
    processor = Sam2VideoProcessor.from_pretrained(folder)
    inputs = {"input_points": [points], "input_labels": [point_labels]}
    return streamed_by_transformers(model, processor, frames, {0: (list(range(1, len(points) + 1)), inputs)})


def test_langsam_tracks_clicked_objects_as_sam2_video_driven_directly(pipeline, clip, tiny_video_dir):
    decoded, _ = read_with_pyav(clip)
    reference = sam2_video_reference(tiny_video_dir, decoded[1::2], POINTS, POINT_LABELS)
    ours = list(pipeline.track(clip, points=POINTS, point_labels=POINT_LABELS, label=["red", "green"],
                               video_segmenter=tiny_video_dir, start=0.1, stride=2))
    assert [frame.index for frame in ours] == [1, 3, 5]
    for frame, expected in zip(ours, reference):
        assert_frame_holds(frame, expected, {1: "red", 2: "green"})
    assert any(frame.objects for frame in ours)
    assert not all(mask.all() for masks in reference for mask in masks.values())


def test_edgetam_video_follows_clicks_as_edgetam_video_driven_directly(pipeline, tmp_path):
    from tests.video.conftest import save_tiny_edgetam_video

    folder = save_tiny_edgetam_video(tmp_path / "edgetam-video")
    frames = moving_squares(4)
    reference = sam2_video_reference(folder, frames, POINTS, POINT_LABELS, "EdgeTamVideoModel")
    ours = list(pipeline.track(frames, points=POINTS, point_labels=POINT_LABELS, video_segmenter=folder))
    assert len(ours) == 4 and any(frame.objects for frame in ours)
    for frame, expected in zip(ours, reference):
        assert_frame_holds(frame, expected)


def test_one_object_takes_points_as_predict_does(pipeline, clip, tiny_video_dir):
    decoded, _ = read_with_pyav(clip)
    reference = sam2_video_reference(tiny_video_dir, decoded[:3], [POINTS[0]], [POINT_LABELS[0]])
    ours = list(pipeline.track(clip, points=np.array(POINTS[0]), point_labels=POINT_LABELS[0], video_segmenter=tiny_video_dir,
                               end=0.25))
    assert len(ours) == 3 and all(set(masks) == {1} for masks in reference)
    for frame, expected in zip(ours, reference):
        assert_frame_holds(frame, expected)


@pytest.mark.parametrize(("points", "point_labels", "label", "message"), [
    ([], None, "object", "Click at least one object"),
    (None, [1], "object", "Click at least one object"),
    ([[1, 2], [3, 4]], [1, 2], "object", r"Clicked object 1: .*1 \(object\) or 0 \(background\)"),
    ([[1, 2], [3, 4]], [1], "object", r"Clicked object 1: .*one label each"),
    (POINTS, [[1, 0]], "object", "Got 2 clicked objects but 1 point_labels"),
    (POINTS, None, ["one"], r"Got 2 clicked objects but 1 labels \(class names\)"),
    (POINTS, None, ["one", ""], "class name"),
    ([[["a", 2]]], None, "object", "Clicked object 1's points must be numbers"),
    ([[1, 2, 3]], None, "object", r"Clicked object 1's points must be numbers of shape \(-1, 2\)"),
])
def test_clicks_that_are_not_clicks_are_refused(points, point_labels, label, message):
    with pytest.raises(InvalidPromptError, match=message):
        clicked_objects(points, point_labels, label)


def test_bad_clicks_and_options_fail_before_any_video_model_loads(pipeline, clip, tmp_path):
    nowhere = tmp_path / "no-video-model"
    with pytest.raises(InvalidPromptError, match=r"click \[80.0, 10.0\] is outside the 64x48 image"):
        pipeline.track(clip, points=[[80, 10]], video_segmenter=nowhere)
    with pytest.raises(InvalidOptionError, match="redetect_every: options of text tracking.*start, end, stride only"):
        pipeline.track(clip, points=[[8, 10]], video_segmenter=nowhere, redetect_every=2)
    with pytest.raises(InvalidPromptError, match="a text prompt or your clicks, one or the other"):
        pipeline.track(clip, "square", points=[[8, 10]], video_segmenter=nowhere)
    with pytest.raises(InvalidPromptError, match="needs a prompt"):
        pipeline.track(clip)


def test_track_command_writes_the_clicked_objects_langsam_follows(pipeline, clip, tiny_video_dir, tmp_path, capsys):
    code = main(["track", str(clip), "--points", "8,10;40,20", "--point-labels", "1,0", "--points", "56,38", "--point-labels", "1",
                 "--label", "red",
                 "--label", "green", "--sam-checkpoint", str(tiny_video_dir), "--device", "cpu", "--dtype", "float32",
                 "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in (tmp_path / "out" / "clip.jsonl").read_text().splitlines()]
    expected = [frame.to_json() for frame in pipeline.track(clip, points=POINTS, point_labels=POINT_LABELS, label=["red", "green"],
                                                            video_segmenter=tiny_video_dir)]
    assert lines == expected and len(lines) == FRAMES and any(line["objects"] for line in lines)
    drawn, _ = read_with_pyav(tmp_path / "out" / "clip.mp4")
    assert len(drawn) == FRAMES and drawn[0].shape == (48, 64, 3)
    assert "frames, 2 tracks" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "message"), [
    (["--points", "80,10"], r"click \[80.0, 10.0\] is outside the 64x48 image"),
    (["--points", "8,10", "--points", "56,38", "--point-labels", "1"], "Got 2 --points but 1 --point-labels"),
    (["--points", "8,10", "--point-labels", "1,2"], r"--point-labels are 1 \(object\) or 0 \(background\)"),
    (["--points", "8,10", "--point-labels", "1,0"], r"Clicked object 1: .*one label each"),
    (["--points", "8,10", "--prompt", "square"], "one or the other"),
    ([], "Say what to track"),
    (["--prompt", "square", "--label", "red"], "--point-labels and --label go with --points"),
])
def test_bad_clicks_fail_before_any_model_loads_and_keep_earlier_outputs(clip, tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.jsonl").write_text("an earlier run\n")
    code = main(["track", str(clip), *flags, "--sam-checkpoint", str(tmp_path / "no-video-model"), "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 2 and re.search(message, error), error
    assert [path.name for path in out.iterdir()] == ["clip.jsonl"] and (out / "clip.jsonl").read_text() == "an earlier run\n"
