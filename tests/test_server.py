"""``lang-sam serve`` as a real process on 127.0.0.1: answers, batching, limits, bad requests, shutdown."""

from __future__ import annotations

import base64
import io
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from lang_sam.pipeline import LangSAMResult
from tests.services import free_port, session_processes, start_service, stop_session, wait_until_gone
from tests.test_grounding_dino import ASSETS

MAX_UPLOAD_MB = 1
MAX_IMAGE_PIXELS = 2_000_000
LOOSE = {"box_threshold": "0", "text_threshold": "0", "max_detections": "4"}


@pytest.fixture(scope="module")
def server(service_environment, tmp_path_factory):
    port = free_port()
    command = [
        sys.executable, "-m", "lang_sam.interfaces.cli", "serve", "--port", str(port), "--max-batch-size", "4",
        "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-image-pixels", str(MAX_IMAGE_PIXELS),
    ]
    log = tmp_path_factory.mktemp("server") / "server.log"
    process = start_service(command, service_environment, f"http://127.0.0.1:{port}/health", log)
    yield process, f"http://127.0.0.1:{port}", log
    stop_session(process)


def photo_bytes(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


def post_multipart(url: str, image: bytes, **fields) -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"image": ("photo.jpg", image, "image/jpeg")}, data=fields, timeout=120)


def test_health(server):
    _, url, _ = server
    assert httpx.get(f"{url}/health", timeout=10).text == "ok"


def test_json_answer_holds_size_labels_boxes_and_rle_masks(server):
    _, url, _ = server
    response = post_multipart(url, photo_bytes("chelsea.jpg"), prompt="cat, sofa", **LOOSE)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["image"] == {"height": 300, "width": 451}
    assert "SAM vit_b (encoder width 768)" in payload["model"]
    assert len(payload["detections"]) == 4
    assert list(payload["detections"][0]) == ["label", "score", "mask_score", "box", "mask"]
    result = LangSAMResult.from_json(payload)
    assert result.masks.shape == (4, 300, 451) and result.masks.any()
    assert set(result.phrases) <= {"cat", "sofa"}
    assert (result.boxes >= 0).all() and (result.boxes[:, [0, 2]] <= 451).all() and (result.boxes[:, [1, 3]] <= 300).all()
    assert np.all(np.diff(result.logits) <= 0)


def test_base64_json_request_gives_the_same_answer_as_multipart(server):
    _, url, _ = server
    image = photo_bytes("chelsea.jpg")
    multipart = post_multipart(url, image, prompt="cat", **LOOSE).json()
    body = {"image": base64.b64encode(image).decode(), "prompt": "cat", "box_threshold": 0, "text_threshold": 0, "max_detections": 4}
    as_json = httpx.post(f"{url}/predict", json=body, timeout=120)
    assert as_json.status_code == 200, as_json.text
    assert as_json.json() == multipart


def test_png_answer_is_the_drawing(server):
    _, url, _ = server
    response = post_multipart(url, photo_bytes("coffee.jpg"), prompt="cup", format="png", **LOOSE)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    drawing = np.asarray(Image.open(io.BytesIO(response.content)))
    original = np.asarray(Image.open(ASSETS / "coffee.jpg").convert("RGB"))
    assert drawing.shape == original.shape
    assert (drawing != original).any(axis=2).mean() > 0.01, "masks and boxes are drawn"


def test_twenty_concurrent_requests_are_batched_and_all_answered_correctly(server):
    _, url, log = server
    cases = [(name, prompt) for name in ("chelsea.jpg", "coffee.jpg") for prompt in ("cat", "cup, spoon")]
    expected = {case: post_multipart(url, photo_bytes(case[0]), prompt=case[1], **LOOSE).json() for case in cases}
    requests = [cases[i % len(cases)] for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda case: post_multipart(url, photo_bytes(case[0]), prompt=case[1], **LOOSE), requests))
    assert [r.status_code for r in responses] == [200] * 20
    for case, response in zip(requests, responses):
        answer = response.json()
        want = expected[case]
        assert [d["label"] for d in answer["detections"]] == [d["label"] for d in want["detections"]]
        np.testing.assert_allclose([d["box"] for d in answer["detections"]], [d["box"] for d in want["detections"]], atol=0.05)
        np.testing.assert_allclose([d["score"] for d in answer["detections"]], [d["score"] for d in want["detections"]], atol=1e-4)


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 400, "must be an object"),
        ({"content": b"--xyz\r\ngarbage", "headers": {"content-type": "multipart/form-data; boundary=xyz"}}, 400, "multipart"),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "content type"),
        ({"json": {"prompt": "cat"}}, 400, 'field "image"'),
        ({"json": {"image": "%%%", "prompt": "cat"}}, 400, "not valid base64"),
        ({"json": {"image": base64.b64encode(b"not an image").decode(), "prompt": "cat"}}, 400, "image format"),
        ({"files": {"image": ("a.jpg", b"\xff\xd8\xff" * 10)}, "data": {"prompt": "cat"}}, 400, "Could not read"),
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "  "}}, 400, "prompt"),
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "x" * 3000}}, 400, "limit is 2000"),
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "cat", "box_threshold": "nan"}}, 422, "box_threshold"),
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "cat", "text_threshold": "1.5"}}, 422, "between 0 and 1"),
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "cat", "sam_type": "vit_x"}}, 422, "Unknown sam_type"),
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "cat", "format": "gif"}}, 422, "Unknown format"),
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "cat", "max_detections": "2.5"}}, 422, "whole number"),
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "cat", "sam_type": "vit_h"}}, 503, "sam_vit_h_4b8939.pth"),
    ],
)
def test_bad_requests_get_a_4xx_or_503_with_a_message(server, request_kwargs, status, message):
    _, url, _ = server
    response = httpx.post(f"{url}/predict", timeout=120, **request_kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert "Traceback" not in response.text


def test_oversized_bodies_and_images_are_refused(server):
    _, url, _ = server
    too_big = post_multipart(url, os.urandom(MAX_UPLOAD_MB * 2**20 + 10), prompt="cat")
    assert too_big.status_code == 413 and "larger than the limit" in too_big.json()["detail"]
    buffer = io.BytesIO()
    Image.new("L", (2000, 1500)).save(buffer, format="PNG")  # 3 Mpx, a few kB
    too_many_pixels = post_multipart(url, buffer.getvalue(), prompt="cat")
    assert too_many_pixels.status_code == 400 and "2000x1500 pixels" in too_many_pixels.json()["detail"]


def test_a_bad_request_in_a_batch_does_not_fail_the_others(server):
    _, url, _ = server
    good = {"files": {"image": ("a.jpg", photo_bytes("coffee.jpg"))}, "data": {"prompt": "cup", **LOOSE}}
    bad = {"files": {"image": ("a.jpg", b"junk")}, "data": {"prompt": "cup"}}
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda kwargs: httpx.post(f"{url}/predict", timeout=120, **kwargs), [good, bad] * 4))
    assert [r.status_code for r in responses] == [200, 400] * 4
    assert httpx.get(f"{url}/health", timeout=10).text == "ok"


def test_mounted_app_and_sigterm_shutdown_leave_no_process(service_environment, tmp_path):
    """With --with-app one process serves the API and the Gradio app; SIGTERM to that process alone
    (as docker stop sends) stops every worker it started."""
    port = free_port()
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "serve", "--port", str(port), "--with-app"]
    process = start_service(command, service_environment, f"http://127.0.0.1:{port}/health", tmp_path / "server.log")
    try:
        assert len(session_processes(process.pid)) >= 2, "LitServe runs the model in worker processes"
        page = httpx.get(f"http://127.0.0.1:{port}/app/", timeout=30)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        from gradio_client import Client, handle_file

        client = Client(f"http://127.0.0.1:{port}/app/", verbose=False)
        _, table, _, status = client.predict(
            handle_file(str(ASSETS / "coffee.jpg")), "cup", "vit_b", 0.0, 0.0, api_name="/predict"
        )
        assert "SAM vit_b (encoder width 768)" in status
        assert len(table["data"]) > 0 and {row[0] for row in table["data"]} == {"cup"}
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        assert wait_until_gone(process.pid, timeout=30) == []
    finally:
        stop_session(process)
