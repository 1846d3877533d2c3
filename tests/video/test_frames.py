"""VideoFrames and VideoWriter on videos written here with PyAV: times, ranges, sizes, rotation,
folders and arrays, bad inputs, and the writer's timing and atomic rename."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from lang_sam.errors import InvalidImageError, InvalidOptionError
from lang_sam.video.frames import VideoFrames, VideoWriter
from tests.video.conftest import moving_squares, read_with_pyav, write_video


def close_to(decoded: np.ndarray, original: np.ndarray) -> bool:
    """Within what lossy H.264 leaves of flat coloured shapes."""
    return float(np.abs(decoded.astype(np.int16) - original.astype(np.int16)).mean()) < 6


def test_a_file_gives_every_frame_with_its_index_time_and_pixels(tmp_path):
    originals = moving_squares(12)
    video = VideoFrames(write_video(tmp_path / "clip.mp4", originals, fps=10))
    assert (video.size, video.fps, video.name) == ((48, 64), 10.0, "clip")
    frames = list(video)
    assert [frame.index for frame in frames] == list(range(12))
    assert [frame.time for frame in frames] == pytest.approx([i / 10 for i in range(12)], abs=1e-3)
    assert all(close_to(frame.image, original) for frame, original in zip(frames, originals))
    assert all(frame.image.dtype == np.uint8 and frame.image.shape == (48, 64, 3) for frame in frames)


def test_start_end_and_stride_select_by_time(tmp_path):
    video = write_video(tmp_path / "clip.mp4", moving_squares(20), fps=10)
    expected = [i for i in range(20) if 0.5 <= i / 10 < 1.5][::3]
    assert [frame.index for frame in VideoFrames(video, start=0.5, end=1.5, stride=3)] == expected
    assert [frame.index for frame in VideoFrames(video, stride=7)] == list(range(0, 20, 7))


def test_variable_frame_rate_times_come_from_timestamps(tmp_path):
    times = [0.0, 0.1, 0.15, 0.4, 0.45, 1.0, 1.02]
    video = VideoFrames(write_video(tmp_path / "vfr.mp4", moving_squares(len(times)), times=times))
    assert [frame.time for frame in video] == pytest.approx(times, abs=1e-3)
    assert [frame.index for frame in VideoFrames(write_video(tmp_path / "vfr2.mp4", moving_squares(7), times=times),
                                                 start=0.3, end=1.01)] == [3, 4, 5]


def test_odd_sizes_are_read_at_their_size(tmp_path):
    originals = [frame[:17, :33].copy() for frame in moving_squares(4)]
    video = VideoFrames(write_video(tmp_path / "odd.mp4", originals, pixel_format="yuv444p"))
    frames = list(video)
    assert video.size == (17, 33) and all(frame.image.shape == (17, 33, 3) for frame in frames)
    assert all(close_to(frame.image, original) for frame, original in zip(frames, originals))


def test_the_display_rotation_is_applied(tmp_path):
    frame = np.zeros((18, 34, 3), np.uint8)
    frame[:6, :6] = 255  # a white top-left corner
    video = VideoFrames(write_video(tmp_path / "rotated.mp4", [frame] * 3, rotation=90))
    upright = next(iter(video)).image
    # 90 degrees counter-clockwise: 34 rows, 18 columns, the top-left corner now at the bottom left
    assert video.size == (34, 18) and upright.shape == (34, 18, 3)
    white = np.argwhere(upright.mean(axis=2) > 200)
    assert white[:, 0].min() >= 34 - 7 and white[:, 1].max() <= 6


def test_a_folder_is_read_in_natural_order_at_the_given_rate(tmp_path):
    originals = moving_squares(3)
    for number, image in zip((2, 10, 1), originals):  # names out of order on purpose
        Image.fromarray(image).save(tmp_path / f"frame{number}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    frames = list(VideoFrames(tmp_path, fps=4))
    assert [frame.time for frame in frames] == [0, 0.25, 0.5]
    expected_order = [originals[2], originals[0], originals[1]]  # frame1, frame2, frame10
    assert all((frame.image == image).all() for frame, image in zip(frames, expected_order))


def test_arrays_are_read_once_and_must_share_one_size():
    frames = moving_squares(5)
    video = VideoFrames(iter(frames), start=0.1, fps=10)
    assert [frame.index for frame in video] == [1, 2, 3, 4]
    assert list(video) == []
    with pytest.raises(InvalidImageError, match="same size"):
        list(VideoFrames([frames[0], frames[1][:20]]))


@pytest.mark.parametrize("case", ["empty", "junk", "cut", "audio", "missing", "no images"])
def test_bad_inputs_say_what_is_wrong(tmp_path, case):
    import av

    if case == "empty":
        path = tmp_path / "empty.mp4"
        path.write_bytes(b"")
    elif case == "junk":
        path = tmp_path / "junk.mov"
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "cut":
        whole = write_video(tmp_path / "whole.mp4", moving_squares(10)).read_bytes()
        path = tmp_path / "cut.mp4"
        path.write_bytes(whole[: len(whole) // 2])
    elif case == "audio":
        path = tmp_path / "sound.m4a"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("aac", rate=8000)
            for index in range(4):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 8000, index * 1024
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    elif case == "missing":
        path = tmp_path / "nowhere.mp4"
    else:
        path = tmp_path / "frames"
        path.mkdir()
        (path / "readme.txt").write_text("no frames here")
    expected = {"empty": "not a video", "junk": "not a video", "cut": "not a video", "audio": r"no video stream \(it holds audio\)",
                "missing": "does not exist", "no images": "holds no images"}[case]
    with pytest.raises(InvalidImageError, match=expected):
        VideoFrames(path)


def noise_frames(count: int) -> list[np.ndarray]:
    """Frames H.264 cannot shrink much: every frame's packet is about as big as the first, so a
    cut falls after a few whole frames, as in a real cut download."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(count)]


def packet_starts(path) -> list[int]:
    """Where each video packet's bytes begin in the file (the file's own order)."""
    import av

    with av.open(str(path)) as container:
        return [packet.pos for packet in container.demux(container.streams.video[0]) if packet.size]


@pytest.mark.parametrize("where", ["at 60%", "between two frames"])
def test_a_faststart_mp4_cut_short_is_an_error_naming_the_frame_where_it_broke(tmp_path, where):
    """A web video (index first, movflags=faststart) whose download stopped: it opens and its first
    frames decode, then the data ends. Never a silently shorter video."""
    whole = write_video(tmp_path / "whole.mp4", noise_frames(10), options={"movflags": "faststart"})
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10] if where == "at 60%" else data[: packet_starts(whole)[6]])
    read: list[int] = []
    with pytest.raises(InvalidImageError, match="damaged or cut short") as caught:
        for frame in VideoFrames(cut):
            read.append(frame.index)
    assert read == list(range(len(read))) and 0 < len(read) < 10
    assert re.search(rf"\bframe {len(read)}\b", str(caught.value)), (read, str(caught.value))


def test_a_start_past_the_end_is_refused_when_the_video_opens(tmp_path):
    video = write_video(tmp_path / "clip.mp4", moving_squares(10), fps=10)
    with pytest.raises(InvalidOptionError, match=r"start \(999.0 s\) is past the end of clip.mp4 \(1(\.0)? s long\)"):
        VideoFrames(video, start=999)
    for number, image in enumerate(moving_squares(3)):
        Image.fromarray(image).save(tmp_path / f"frame{number}.png")
    with pytest.raises(InvalidOptionError, match="past the end"):
        VideoFrames(tmp_path, start=0.1, fps=30)  # 3 frames at 30 fps: 0.1 s long


def test_a_range_that_holds_no_frame_is_an_error_not_an_empty_video(tmp_path):
    video = write_video(tmp_path / "clip.mp4", moving_squares(10), fps=10)
    frames = VideoFrames(video, start=0.25, end=0.28)  # frames at 0.2 and 0.3 s: none between
    with pytest.raises(InvalidOptionError, match=r"No frame of clip.mp4 lies between 0.25 s and 0.28 s \(the nearest frames are at 0.2 s and 0.3 s\)"):
        list(frames)
    with pytest.raises(InvalidOptionError, match=r"No frame of the frames given lies at or after 0.25 s \(its last frame is at 0.2 s\)"):
        list(VideoFrames(iter(moving_squares(3)), start=0.25, fps=10))  # arrays: no length known when opened


def test_bad_options_are_refused(tmp_path):
    video = write_video(tmp_path / "clip.mp4", moving_squares(3))
    for options, message in (({"stride": 0}, "stride"), ({"start": -1}, "start"), ({"start": 2, "end": 1}, "after start"),
                             ({"end": float("nan")}, "end"), ({"fps": 5}, "own frame rate")):
        with pytest.raises(InvalidOptionError, match=message):
            VideoFrames(video, **options)


def test_the_writer_keeps_size_and_times_and_pads_odd_sizes_for_yuv420p(tmp_path):
    originals = [frame[:17, :33].copy() for frame in moving_squares(6)]
    times = [0.0, 0.2, 0.25, 0.6, 0.7, 1.5]
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=10, size=(17, 33)) as writer:
        for image, time in zip(originals, times):
            writer.write(image, time)
    decoded, decoded_times = read_with_pyav(path)
    assert decoded_times == pytest.approx(times, abs=1e-3)
    assert all(image.shape == (18, 34, 3) for image in decoded)  # one more row and column, copies of the last
    assert all(close_to(image[:17, :33], original) for image, original in zip(decoded, originals))
    assert [frame.index for frame in VideoFrames(path)] == list(range(6))


def test_a_writer_stopped_by_an_error_leaves_nothing(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="stopped"):
        with VideoWriter(path, fps=10, size=(48, 64)) as writer:
            writer.write(moving_squares(1)[0])
            assert not path.exists()  # only the temporary file exists while writing
            raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []


def test_a_writer_given_no_frame_replaces_nothing(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"an earlier run's video")
    with pytest.raises(InvalidImageError, match="no frame"), VideoWriter(path, fps=10, size=(48, 64)):
        pass
    assert path.read_bytes() == b"an earlier run's video" and list(tmp_path.iterdir()) == [path]


def test_the_writer_refuses_frames_of_another_size(tmp_path):
    with pytest.raises(InvalidImageError, match=r"\(48, 64, 3\) uint8"):
        with VideoWriter(tmp_path / "out.mp4", fps=10, size=(48, 64)) as writer:
            writer.write(np.zeros((10, 10, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
