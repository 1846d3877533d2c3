"""POST /track on a real server process: the JSON lines it streams equal LangSAM.track's frames
computed here with the same models; bad requests get their 4xx before any frame."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from lang_sam import LangSAM
from tests.conftest import TINY_A
from tests.services import free_port, start_service, stop_session, wait_for
from tests.video.conftest import moving_squares, write_video
from tests.video.test_track_cli import threshold_for

FRAMES = 6
VIDEO_NAME = "tiny-video"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("server-clip") / "clip.mp4", moving_squares(FRAMES), fps=10)


@pytest.fixture(scope="module")
def checkpoints(service_models, tiny_video_dir, tmp_path_factory):
    """The tiny SAM v1 the server starts with and the tiny SAM 2.1 video model as a folder NAME."""
    folder = tmp_path_factory.mktemp("track-checkpoints")
    (folder / f"{TINY_A}.pth").symlink_to(service_models[0] / f"{TINY_A}.pth")
    (folder / VIDEO_NAME).symlink_to(tiny_video_dir, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def server(service_environment, checkpoints, tmp_path_factory):
    port = free_port()
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "serve", "--port", str(port), "--sam-types", VIDEO_NAME]
    log = tmp_path_factory.mktemp("track-server") / "server.log"
    process = start_service(command, {**service_environment, "LANG_SAM_CHECKPOINTS": str(checkpoints)},
                            f"http://127.0.0.1:{port}/health", log)
    yield f"http://127.0.0.1:{port}"
    stop_session(process)


def post_track(url: str, video: bytes, **fields) -> httpx.Response:
    return httpx.post(f"{url}/track", files={"video": ("clip.mp4", video, "video/mp4")}, data=fields, timeout=300)


def test_track_streams_the_frames_langsam_tracks(server, clip, checkpoints, tiny_detector_dir):
    threshold = threshold_for(tiny_detector_dir, moving_squares(1)[0], "square, circle", 3)
    options = {"box_threshold": threshold, "text_threshold": 0.0, "redetect_every": 3}
    response = post_track(server, clip.read_bytes(), prompt="square, circle", sam_type=VIDEO_NAME,
                          **{name: str(value) for name, value in options.items()})
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    model = LangSAM(sam_checkpoint=checkpoints / f"{TINY_A}.pth", detector=tiny_detector_dir, device="cpu", dtype="float32")
    expected = [frame.to_json() for frame in model.track(clip, "square, circle", video_segmenter=checkpoints / VIDEO_NAME, **options)]
    assert [line["frame"] for line in lines] == list(range(FRAMES)) and any(line["objects"] for line in lines)
    assert lines == expected


def test_bad_track_requests_get_their_status_before_any_frame(server, clip):
    assert post_track(server, clip.read_bytes(), sam_type=VIDEO_NAME).status_code == 400  # no prompt
    unknown = post_track(server, clip.read_bytes(), prompt="square", sam_type="vit_b")
    assert unknown.status_code == 422 and VIDEO_NAME in unknown.json()["detail"]
    broken = post_track(server, b"not a video", prompt="square", sam_type=VIDEO_NAME)
    assert broken.status_code == 400 and "video" in broken.json()["detail"].lower()
    assert httpx.get(f"{server}/health", timeout=10).json()["status"] == "ok"


@pytest.mark.parametrize(("fields", "message"), [
    ({"redetect_every": "0"}, "redetect_every must be a whole number of frames >= 1, got 0"),
    ({"redetect_every": "-5"}, "redetect_every must be a whole number of frames >= 1, got -5"),
    ({"max_lost": "-1"}, "max_lost must be a whole number >= 1"),
    ({"max_lost": "0"}, "max_lost must be a whole number >= 1"),
    ({"iou_threshold": "0"}, "iou_threshold must be in (0, 1]"),
])
def test_tracking_options_out_of_range_are_a_422_before_the_stream(server, clip, fields, message):
    response = post_track(server, clip.read_bytes(), prompt="square", sam_type=VIDEO_NAME, **fields)
    assert response.status_code == 422 and message in response.json()["detail"], response.text


def test_a_video_that_does_not_open_is_named_by_its_upload_not_the_servers_path(server):
    response = httpx.post(f"{server}/track", files={"video": ("holiday clip.mp4", b"not a video", "video/mp4")},
                          data={"prompt": "square", "sam_type": VIDEO_NAME}, timeout=300)
    detail = response.json()["detail"]
    assert response.status_code == 400 and detail.startswith('"holiday clip.mp4" is not a video'), detail
    assert "lang-sam-" not in detail and "upload" not in detail.split("(")[0], detail


def test_limited_frames_end_the_tracking_past_the_limit_with_its_flag(clip):
    from lang_sam.errors import InvalidOptionError
    from lang_sam.interfaces.server.track import LimitedFrames

    assert [frame.index for frame in LimitedFrames(clip, FRAMES)] == list(range(FRAMES))
    frames = iter(LimitedFrames(clip, 2, stride=2))
    assert [next(frames).index for _ in range(2)] == [0, 2]
    with pytest.raises(InvalidOptionError, match="more than 2 frames.*--max-track-frames"):
        next(frames)


@pytest.fixture(scope="module")
def app(service_environment, checkpoints, tmp_path_factory):
    from pathlib import Path

    port = free_port()
    log = tmp_path_factory.mktemp("track-app") / "app.log"
    script = Path(__file__).resolve().parents[2] / "app.py"
    process = start_service([sys.executable, str(script), "--port", str(port)],
                            {**service_environment, "LANG_SAM_CHECKPOINTS": str(checkpoints)}, f"http://127.0.0.1:{port}/", log)
    yield f"http://127.0.0.1:{port}/"
    stop_session(process)


def test_the_apps_video_tab_tracks_as_langsam_does(app, clip, checkpoints, tiny_detector_dir, service_environment):
    from pathlib import Path

    from gradio_client import Client, handle_file

    threshold = threshold_for(tiny_detector_dir, moving_squares(1)[0], "square, circle", 3)
    client = Client(app, verbose=False)
    video, table, lines_file, status = client.predict(
        handle_file(str(clip)), "square, circle", VIDEO_NAME, service_environment["LANG_SAM_DETECTOR"],
        threshold, 0.0, 3, 30, 1, api_name="/track")
    lines = [json.loads(line) for line in Path(lines_file).read_text().splitlines()]
    model = LangSAM(sam_checkpoint=checkpoints / f"{TINY_A}.pth", detector=tiny_detector_dir, device="cpu", dtype="float32")
    expected = [frame.to_json() for frame in model.track(clip, "square, circle", video_segmenter=checkpoints / VIDEO_NAME,
                                                         box_threshold=threshold, text_threshold=0.0, redetect_every=3)]
    assert lines == expected and status.startswith(f"{FRAMES} frames")
    ids = sorted({item["id"] for line in lines for item in line["objects"]})
    assert [row[0] for row in table["data"]] == ids and Path(video["video"] if isinstance(video, dict) else video).is_file()


LONG_FRAMES = 200  # 20 s at 10 fps: with redetect_every 1, minutes of CPU work for the tiny models
MAX_TRACK_FRAMES = 150
MIDWAY_TRIES = 3


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("long-clip") / "long.mp4", moving_squares(LONG_FRAMES), fps=10)


@pytest.fixture(scope="module")
def limited_server(service_environment, checkpoints, tmp_path_factory):
    """A server with a temporary folder (TMPDIR) of its own, to see what files it leaves, and
    --max-track-frames below the long clip's frame count. The last test of this module stops it."""
    temporary = tmp_path_factory.mktemp("limited-server-tmp")
    port = free_port()
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "serve", "--port", str(port), "--sam-types", VIDEO_NAME,
               "--max-track-frames", str(MAX_TRACK_FRAMES)]
    log = tmp_path_factory.mktemp("limited-server") / "server.log"
    process = start_service(command, {**service_environment, "LANG_SAM_CHECKPOINTS": str(checkpoints), "TMPDIR": str(temporary)},
                            f"http://127.0.0.1:{port}/health", log)
    yield process, f"http://127.0.0.1:{port}", temporary, log
    stop_session(process)


def uploads(temporary: Path) -> list[Path]:
    return sorted(temporary.rglob("lang-sam-track-*"))


def slow_track_fields(tiny_detector_dir) -> dict[str, str]:
    """The detector on every frame of half the long clip (stride 2, under the limit): a run that
    would hold the worker for minutes."""
    threshold = threshold_for(tiny_detector_dir, moving_squares(1)[0], "square, circle", 3)
    return {"prompt": "square, circle", "sam_type": VIDEO_NAME, "box_threshold": str(threshold), "text_threshold": "0",
            "redetect_every": "1", "stride": "2"}


def test_a_video_over_max_track_frames_is_a_422_before_the_stream(limited_server, long_clip):
    _, url, _, _ = limited_server
    response = post_track(url, long_clip.read_bytes(), prompt="square", sam_type=VIDEO_NAME, box_threshold="1")
    assert response.status_code == 422, response.text  # (box_threshold 1: a server that streamed it would find nothing, fast)
    detail = response.json()["detail"]
    assert f"asks for {LONG_FRAMES} frames to track" in detail and f"at most {MAX_TRACK_FRAMES}" in detail
    assert "--max-track-frames" in detail


def test_a_track_client_that_leaves_stops_its_work_and_its_upload(limited_server, long_clip, clip, tiny_detector_dir):
    """The client reads 2 lines and disconnects: the worker stops before its next frame, the
    upload folder goes, and the next /track is answered in full."""
    _, url, temporary, log = limited_server
    with httpx.stream("POST", f"{url}/track", files={"video": ("long.mp4", long_clip.read_bytes(), "video/mp4")},
                      data=slow_track_fields(tiny_detector_dir), timeout=300) as response:
        assert response.status_code == 200
        lines = (line for line in response.iter_lines() if line.strip())
        assert [json.loads(next(lines))["frame"] for _ in range(2)] == [0, 2]
        assert uploads(temporary), "the upload is kept while it is tracked"
    assert wait_for(lambda: "a /track client left after" in log.read_text(), timeout=120), log.read_text()[-3000:]
    assert wait_for(lambda: not uploads(temporary), timeout=30), uploads(temporary)
    following = httpx.post(f"{url}/track", files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")},
                           data={"prompt": "square", "sam_type": VIDEO_NAME}, timeout=120)
    assert following.status_code == 200
    assert [json.loads(line)["frame"] for line in following.text.splitlines() if line.strip()] == list(range(FRAMES))


def test_stopping_the_server_midway_through_a_track_leaves_no_files(limited_server, long_clip, tiny_detector_dir):
    """Last in this module: it stops the server (SIGTERM to its process group, as stop_session does)
    while a track is running, its upload on disk. LitServe's worker runs a stream ahead of its
    client, so on a starved machine a track can end before its first line is read: then the next
    track is tried (the state needed is waited for, never a duration)."""
    process, url, temporary, _ = limited_server
    for _ in range(MIDWAY_TRIES):
        with httpx.stream("POST", f"{url}/track", files={"video": ("long.mp4", long_clip.read_bytes(), "video/mp4")},
                          data=slow_track_fields(tiny_detector_dir), timeout=300) as response:
            assert response.status_code == 200
            lines = (line for line in response.iter_lines() if line.strip())
            first = json.loads(next(lines))
            assert "frame" in first, first
            if uploads(temporary):
                stop_session(process)
                break
            assert len([first, *lines]) == LONG_FRAMES // 2, "an upload is removed only when its track is over"
    else:
        pytest.fail(f"none of {MIDWAY_TRIES} tracks was still running when its first line was read")
    assert process.poll() is not None
    assert sorted(temporary.glob("lang-sam-*")) == [], "the server's folders (uploads, embeddings) are removed when it stops"
