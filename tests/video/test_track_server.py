"""POST /track on a real server process: the JSON lines it streams equal LangSAM.track's frames
computed here with the same models; bad requests get their 4xx before any frame."""

from __future__ import annotations

import json
import sys

import httpx
import pytest

from lang_sam import LangSAM
from tests.conftest import TINY_A
from tests.services import free_port, start_service, stop_session
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
