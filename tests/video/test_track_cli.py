"""lang-sam track end to end: a synthetic MP4, the tiny Grounding DINO and the tiny SAM 2.1 video,
in process; the MP4 and JSONL it writes are read back and checked against the input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from lang_sam.interfaces.cli import main
from lang_sam.results import decode_rle
from tests.video.conftest import moving_squares, read_with_pyav, write_video

FRAMES = 8


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", moving_squares(FRAMES), fps=10)


def threshold_for(detector_dir, image: np.ndarray, prompt: str, count: int) -> float:
    """A box threshold that keeps about count of the tiny random detector's boxes on image."""
    from lang_sam.families.detectors import load_detector

    found = load_detector(detector_dir, "cpu", "float32").detect([Image.fromarray(image)], prompt, box_threshold=0, text_threshold=0)[0]
    return float(found.box_scores[count - 1])


def test_track_writes_a_video_and_a_line_per_frame(clip, tmp_path, tiny_detector_dir, tiny_video_dir, capsys):
    threshold = threshold_for(tiny_detector_dir, moving_squares(1)[0], "square, circle", 3)
    code = main(["track", str(clip), "--prompt", "square, circle", "--out", str(tmp_path / "out"), "--detector",
                 str(tiny_detector_dir), "--sam-checkpoint", str(tiny_video_dir), "--box-threshold", str(threshold),
                 "--text-threshold", "0", "--redetect-every", "4", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["clip.jsonl", "clip.mp4"]
    lines = [json.loads(line) for line in (tmp_path / "out" / "clip.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(FRAMES))
    assert [line["time"] for line in lines] == pytest.approx([i / 10 for i in range(FRAMES)], abs=1e-3)
    assert any(line["objects"] for line in lines)
    for line in lines:
        for item in line["objects"]:
            mask = decode_rle(item["mask"])
            rows, columns = np.nonzero(mask)
            assert mask.shape == (48, 64) and item["label"] in ("square", "circle")
            assert item["box"] == [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
        assert len({item["id"] for item in line["objects"]}) == len(line["objects"])
    drawn, times = read_with_pyav(tmp_path / "out" / "clip.mp4")
    assert len(drawn) == FRAMES and drawn[0].shape == (48, 64, 3)
    assert times == pytest.approx([line["time"] for line in lines], abs=1e-3)
    assert "frames" in capsys.readouterr().err


def test_a_bad_video_fails_before_any_model_loads(tmp_path, capsys):
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"not a video")
    assert main(["track", str(video), "--prompt", "car", "--out", str(tmp_path / "out"), "--detector", "nowhere"]) == 2
    assert capsys.readouterr().err.startswith("lang-sam: ") and not (tmp_path / "out").exists()


def test_langsam_track_reads_the_range_and_matches_the_command(clip, tmp_path, tiny_detector_dir, tiny_video_dir):
    from lang_sam.families.detectors import load_detector
    from lang_sam.families.transformers_sam import TransformersSegmenter
    from lang_sam.pipeline import LangSAM
    from tests.families.conftest import save_tiny_segmenter

    threshold = threshold_for(tiny_detector_dir, moving_squares(1)[0], "square", 2)
    pipeline = LangSAM.from_parts(TransformersSegmenter(save_tiny_segmenter("sam2", tmp_path / "sam2"), device="cpu", dtype="float32"),
                                  load_detector(tiny_detector_dir, "cpu", "float32"))
    results = list(pipeline.track(clip, "square", video_segmenter=tiny_video_dir, start=0.2, stride=2,
                                  box_threshold=threshold, text_threshold=0, redetect_every=2))
    assert [result.index for result in results] == [2, 4, 6]
    assert main(["track", str(clip), "--prompt", "square", "--out", str(tmp_path / "out"), "--detector", str(tiny_detector_dir),
                 "--sam-checkpoint", str(tiny_video_dir), "--box-threshold", str(threshold), "--text-threshold", "0",
                 "--start", "0.2", "--stride", "2", "--redetect-every", "2", "--device", "cpu"]) == 0
    lines = [json.loads(line) for line in (tmp_path / "out" / "clip.jsonl").read_text().splitlines()]
    assert [result.to_json() for result in results] == lines


def test_track_a_clip_panned_across_a_real_photo(tmp_path, tiny_detector_dir, tiny_video_dir, capsys):
    """A clip made from a demo photo (a window sliding across truck.jpg, as a camera pan would
    show it): real colours and edges through the whole CLI; every line's objects are inside the
    frame and the MP4 has the clip's frame count and size."""
    from tests.conftest import shared_image

    photo = shared_image("truck.jpg")
    height, width = 120, 160
    frames = [np.ascontiguousarray(photo[100:100 + height, 40 * step:40 * step + width]) for step in range(6)]
    clip = write_video(tmp_path / "pan.mp4", frames, fps=5)
    threshold = threshold_for(tiny_detector_dir, frames[0], "truck, wheel", 2)
    code = main(["track", str(clip), "--prompt", "truck, wheel", "--out", str(tmp_path / "out"), "--detector",
                 str(tiny_detector_dir), "--sam-checkpoint", str(tiny_video_dir), "--box-threshold", str(threshold),
                 "--text-threshold", "0", "--redetect-every", "2", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in (tmp_path / "out" / "pan.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(6)) and any(line["objects"] for line in lines)
    for line in lines:
        for item in line["objects"]:
            x0, y0, x1, y1 = item["box"]
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and item["label"] in ("truck", "wheel")
            assert decode_rle(item["mask"]).shape == (height, width)
    drawn, _ = read_with_pyav(tmp_path / "out" / "pan.mp4")
    assert len(drawn) == 6 and drawn[0].shape == (height, width, 3)


def earlier_outputs(out) -> dict:
    """An earlier run's clip.mp4 and clip.jsonl in out, as bytes a failed run must leave alone."""
    out.mkdir(exist_ok=True)
    kept = {"clip.mp4": b"an earlier run's video", "clip.jsonl": b'{"frame": 0, "time": 0.0, "objects": []}\n'}
    for name, data in kept.items():
        (out / name).write_bytes(data)
    return kept


@pytest.mark.parametrize("option, message", [
    (["--start", "999"], r"start \(999.0 s\) is past the end of clip.mp4"),
    (["--redetect-every", "0"], "redetect_every must be a whole number of frames >= 1"),
    (["--redetect-every", "-5"], "redetect_every must be a whole number of frames >= 1"),
    (["--max-lost", "-1"], "max_lost must be a whole number >= 1"),
    (["--iou-threshold", "2"], r"iou_threshold must be in \(0, 1\]"),
    (["--box-threshold", "-1"], "box_threshold must be a number between 0 and 1"),
    (["--device", "tpu"], "device"),
])
def test_options_that_need_no_model_fail_before_any_model_loads(clip, tmp_path, capsys, option, message):
    """Models that do not exist: reaching them would be another error. An earlier run's outputs stay."""
    out = tmp_path / "out"
    kept = earlier_outputs(out)
    code = main(["track", str(clip), "--prompt", "square", "--out", str(out), "--detector", str(tmp_path / "no-detector"),
                 "--sam-checkpoint", str(tmp_path / "no-video-model"), *option])
    error = capsys.readouterr().err
    assert code == 2 and re.search(message, error), error
    assert error.startswith("lang-sam: ") and "Traceback" not in error
    assert {path.name: path.read_bytes() for path in out.iterdir()} == kept


@pytest.mark.parametrize("problem", ["a range between two frames", "a file cut short"])
def test_a_run_that_reads_no_frame_or_breaks_off_writes_nothing(problem, clip, tmp_path, tiny_detector_dir, tiny_video_dir,
                                                                  capsys):
    """Found only once the frames are read (the models have loaded): exit 2, and an earlier run's
    outputs are left as they were, never replaced by an empty or partial run."""
    from tests.video.test_frames import noise_frames

    out = tmp_path / "out"
    kept = earlier_outputs(out)
    video, options = clip, ["--start", "0.25", "--end", "0.28"]  # frames at 0.2 and 0.3 s: none between
    if problem == "a file cut short":
        whole = write_video(tmp_path / "whole.mp4", noise_frames(10), options={"movflags": "faststart"}).read_bytes()
        video, options = tmp_path / "clip.mp4", []
        video.write_bytes(whole[: len(whole) * 6 // 10])
    code = main(["track", str(video), "--prompt", "square", "--out", str(out), "--detector", str(tiny_detector_dir),
                 "--sam-checkpoint", str(tiny_video_dir), "--device", "cpu", *options])
    error = capsys.readouterr().err
    assert code == 2, error
    assert re.search("No frame of clip.mp4 lies between 0.25 s and 0.28 s" if problem.startswith("a range")
                     else r"frame \d+ could not be decoded .* cut short", error), error
    assert {path.name: path.read_bytes() for path in out.iterdir()} == kept, "no temporary file left, nothing replaced"
