"""POST /track with clicks on a real server process: the JSON lines it streams equal follow_clicks's
frames computed here with the same tiny SAM 2.1 video model (float32); bad clicks get their 4xx
before any frame. The server is test_track_server's (the same fixtures: a new session, stopped
by its process group)."""

from __future__ import annotations

import json
import re

import pytest

from lang_sam.families.loading import load_click_tracker
from lang_sam.video.clicks import clicked_objects, follow_clicks
from lang_sam.video.frames import VideoFrames
from tests.conftest import TINY_A
from tests.video.test_track_server import FRAMES, VIDEO_NAME, checkpoints, clip, post_track, server  # noqa: F401 - fixtures

CLICKS = [{"points": [[8, 10], [40, 20]], "point_labels": [1, 0], "label": "red"}, {"points": [[56, 38]]}]


def test_track_streams_the_clicked_objects_follow_clicks_follows(server, clip, checkpoints):  # noqa: F811
    response = post_track(server, clip.read_bytes(), clicks=json.dumps(CLICKS), sam_type=VIDEO_NAME, stride="2")
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    clicks, names = clicked_objects([[[8, 10], [40, 20]], [[56, 38]]], [[1, 0], [1]], ["red", "object"])
    tracker = load_click_tracker(checkpoints / VIDEO_NAME, device="cpu", dtype="float32")
    expected = [frame.to_json() for frame in follow_clicks(VideoFrames(clip, stride=2), clicks, tracker, label=names)]
    assert [line["frame"] for line in lines] == list(range(0, FRAMES, 2)) and any(line["objects"] for line in lines)
    assert lines == expected
    assert {item["label"] for line in lines for item in line["objects"]} <= {"red", "object"}


@pytest.mark.parametrize(("fields", "status", "message"), [
    ({"clicks": "[]"}, 400, '"clicks" is a JSON list of objects'),
    ({"clicks": "not json"}, 400, '"clicks" is a JSON list of objects'),
    ({"clicks": json.dumps([{"points": [8, 10]}])}, 400, "a list of \\[x, y\\]"),
    ({"clicks": json.dumps([{"points": [[80, 10]]}])}, 400, r"The click \[80.0, 10.0\] is outside the 64x48 image"),
    ({"clicks": json.dumps([{"points": [[8, 10]], "point_labels": [2]}])}, 400, r"Clicked object 1: .*1 \(object\) or 0"),
    ({"clicks": json.dumps([{"points": [[8, 10]], "labels": [1]}])}, 400, "got 'labels'"),
    ({"clicks": json.dumps(CLICKS), "prompt": "square"}, 400, '"prompt" or "clicks", one or the other'),
    ({"clicks": json.dumps(CLICKS), "redetect_every": "2"}, 422, "redetect_every: options of text tracking"),
    ({"clicks": json.dumps(CLICKS), "sam_type": TINY_A}, 422, f"{TINY_A} does not track video"),
])
def test_bad_clicks_get_their_status_before_any_frame(server, clip, fields, status, message):  # noqa: F811
    response = post_track(server, clip.read_bytes(), **{"sam_type": VIDEO_NAME, **fields})
    assert response.status_code == status, response.text
    assert re.search(message, response.json()["detail"]), response.text
