"""Clicks through a video on real processes: POST /track's JSON lines and the app's video tab (its
API, and a first frame clicked in headless Chromium) equal follow_clicks's frames computed here with
the same tiny SAM 2.1 video model (float32); bad clicks get their 4xx before any frame. The server
and app are test_track_server's fixtures (a new session each, stopped by its process group)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from lang_sam.families.loading import load_click_tracker
from lang_sam.video.clicks import clicked_objects, follow_clicks
from lang_sam.video.frames import VideoFrames
from tests.conftest import TINY_A
from tests.video.test_track_server import FRAMES, VIDEO_NAME, app, checkpoints, clip, post_track, server  # noqa: F401 - fixtures

CLICKS = [{"points": [[8, 10], [40, 20]], "point_labels": [1, 0], "label": "red"}, {"points": [[56, 38]]}]


def followed_here(video, folders, objects: list[dict], stride: int = 1) -> list[dict]:
    """The JSON lines of follow_clicks on video with the tiny SAM 2.1 video model (folders: the checkpoints'), for clicks as POST /track takes them."""
    clicks, names = clicked_objects([item["points"] for item in objects], [item.get("point_labels") for item in objects],
                                    [item.get("label", "object") for item in objects])
    tracker = load_click_tracker(folders / VIDEO_NAME, device="cpu", dtype="float32")
    return [frame.to_json() for frame in follow_clicks(VideoFrames(video, stride=stride), clicks, tracker, label=names)]


def test_track_streams_the_clicked_objects_follow_clicks_follows(server, clip, checkpoints):  # noqa: F811
    response = post_track(server, clip.read_bytes(), clicks=json.dumps(CLICKS), sam_type=VIDEO_NAME, stride="2")
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    assert [line["frame"] for line in lines] == list(range(0, FRAMES, 2)) and any(line["objects"] for line in lines)
    assert lines == followed_here(clip, checkpoints, CLICKS, stride=2)
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


def test_the_apps_video_tab_follows_clicks_as_follow_clicks_does(app, clip, checkpoints, service_environment):  # noqa: F811
    from gradio_client import Client, handle_file

    client = Client(app, verbose=False)
    video, table, lines_file, status = client.predict(
        handle_file(str(clip)), "", VIDEO_NAME, service_environment["LANG_SAM_DETECTOR"], 0.3, 0.25, 10, 30, 2,
        json.dumps(CLICKS), api_name="/track")
    lines = [json.loads(line) for line in Path(lines_file).read_text().splitlines()]
    assert lines == followed_here(clip, checkpoints, CLICKS, stride=2) and status.startswith(f"{len(lines)} frames")
    assert [row[:2] for row in table["data"]] == [[1, "red"], [2, "object"]]
    with pytest.raises(Exception, match="one or the other"):
        client.predict(handle_file(str(clip)), "square", VIDEO_NAME, service_environment["LANG_SAM_DETECTOR"], 0.3, 0.25,
                       10, 30, 1, json.dumps(CLICKS), api_name="/track")


def test_clicks_on_the_first_frame_in_a_browser_are_what_the_tab_tracks(app, clip, checkpoints):  # noqa: F811
    """Upload, click the red square (object), the grey (background), next object, the green square:
    the drawing marks each click, the clicks' JSON says what was clicked, and Track follows exactly those."""
    from urllib.parse import urljoin

    from playwright.sync_api import sync_playwright

    from lang_sam.interfaces.app.video_tab import draw_clicks, first_frame
    from tests.interfaces.test_app import BROWSER_ARGS, CHROMIUM

    def canvas() -> dict:
        page.wait_for_function(CANVAS_READY)
        return page.locator("#video-first-frame img").first.bounding_box()

    def click(x: int, y: int) -> None:
        box = canvas()
        page.locator("#video-first-frame img").first.click(position={"x": (x + 0.5) * box["width"] / 64,
                                                                     "y": (y + 0.5) * box["height"] / 48})

    def clicks_after(points: int) -> list[dict]:
        page.wait_for_function("(n) => JSON.parse(document.querySelector('#video-clicks textarea').value || '[]')"
                               ".reduce((sum, item) => sum + item.points.length, 0) == n", arg=points)
        return json.loads(page.locator("#video-clicks textarea").input_value())

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.set_default_timeout(300_000)  # a ceiling for slow machines under load, not a target
        page.goto(app)
        page.get_by_role("tab", name="Video").click()
        page.locator("#video-type input").click()
        page.get_by_role("option", name=VIDEO_NAME, exact=True).click()
        page.locator("#video-upload input[type=file]").set_input_files(str(clip))
        click(10, 10)
        clicks_after(1)
        page.get_by_label("background point").check()
        click(40, 24)
        clicks_after(2)
        page.locator("#video-next-object").click()
        page.get_by_label("object point").check()
        click(54, 36)
        objects = clicks_after(3)
        assert [item["point_labels"] for item in objects] == [[1, 0], [1]]
        for item, near in zip(objects, ([[10, 10], [40, 24]], [[54, 36]])):
            assert np.abs(np.array(item["points"]) - near).max() <= 1, objects
        page.wait_for_function(CANVAS_READY)
        source = page.locator("#video-first-frame img").first.get_attribute("src")
        shown = np.asarray(Image.open(io.BytesIO(httpx.get(urljoin(app, source), timeout=60).content)).convert("RGB"))
        assert np.array_equal(shown, draw_clicks(first_frame(str(clip)), objects)), "each click drawn on the first frame"
        page.locator("#track-submit").click()
        page.locator("#video-status").get_by_text(f"{FRAMES} frames").wait_for()
        link = page.locator("#video-download a").first.get_attribute("href")
        lines = [json.loads(line) for line in httpx.get(urljoin(app, link), timeout=60).text.splitlines()]
        browser.close()
    assert lines == followed_here(clip, checkpoints, objects) and any(line["objects"] for line in lines)


CANVAS_READY = """() => {
    const image = document.querySelector('#video-first-frame img');
    return Boolean(image && image.complete && image.naturalWidth > 0 && image.getBoundingClientRect().width > 0);
}"""
