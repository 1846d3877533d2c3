"""``lang-sam serve`` as a real process on 127.0.0.1: answers, batching, limits, bad requests, shutdown."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from lang_sam.errors import InvalidPromptError
from lang_sam.interfaces.server.api import predict_batch
from lang_sam.segmenter.embedding_store import EmbeddingStore
from lang_sam.interfaces.server.validation import LIMIT_FLAGS, Limits, PredictRequest, Rejected, everything_points
from lang_sam.results import LangSAMResult
from tests.conftest import FORCED_AUTO_VARIABLE, TINY_A, TINY_B
from tests.robustness_cases import write_image_cases
from tests.services import free_port, session_processes, start_service, stop_session, wait_for, wait_until_gone
from tests.detector.test_grounding_dino import ASSETS

MAX_UPLOAD_MB = 4  # above starlette's 1 MB spool size: large uploads must reach the worker too
MAX_IMAGE_PIXELS = 2_000_000
LOOSE = {"box_threshold": "0", "text_threshold": "0", "max_detections": "4"}
MAX_EVERYTHING_POINTS = 16  # a 4x4 grid: a request at the limit is answered in seconds on the CPU


@pytest.fixture(scope="module")
def server(service_environment, service_models, tmp_path_factory):
    """The server on a checkpoint folder whose second SAM file is damaged, so that a request can fail
    inside the model worker while the others are answered."""
    checkpoints = tmp_path_factory.mktemp("server-checkpoints")
    (checkpoints / f"{TINY_A}.pth").symlink_to(service_models[0] / f"{TINY_A}.pth")
    (checkpoints / f"{TINY_B}.pth").write_bytes((service_models[0] / f"{TINY_B}.pth").read_bytes()[:1_000_000])
    service_environment = {**service_environment, "LANG_SAM_CHECKPOINTS": str(checkpoints)}
    port = free_port()
    command = [
        sys.executable, "-m", "lang_sam.interfaces.cli", "serve", "--port", str(port), "--max-batch-size", "4",
        "--sam-types", f"{TINY_A},{TINY_B},vit_h", "--preload", "--detectors", "grounding-dino-tiny",
        "--semantic-models", str(semantic_model(tmp_path_factory)),
        "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-image-pixels", str(MAX_IMAGE_PIXELS),
        "--max-everything-points", str(MAX_EVERYTHING_POINTS),
    ]
    log = tmp_path_factory.mktemp("server") / "server.log"
    process = start_service(command, service_environment, f"http://127.0.0.1:{port}/health", log)
    yield process, f"http://127.0.0.1:{port}", log
    stop_session(process)


def semantic_model(tmp_path_factory) -> Path:
    """The tiny random Mask2Former the server names everything-masks with (made once per run)."""
    from tests.families.conftest import save_tiny_mask2former

    folder = tmp_path_factory.getbasetemp() / "server-mask2former"
    return folder if (folder / "config.json").is_file() else save_tiny_mask2former(folder)


def photo_bytes(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


def post_multipart(url: str, image: bytes, **fields) -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"image": ("photo.jpg", image, "image/jpeg")}, data=fields, timeout=300)


def healthy(url: str) -> bool:
    response = httpx.get(f"{url}/health", timeout=10)
    return response.status_code == 200 and response.json()["status"] == "ok"


def test_health_reports_the_sams_detectors_semantic_models_device_and_dtype(server, service_models, tmp_path_factory):
    _, url, _ = server
    report = httpx.get(f"{url}/health", timeout=10).json()
    assert report == {"status": "ok", "sam_types": [TINY_A, TINY_B, "vit_h"], "detectors": [str(service_models[1]), "grounding-dino-tiny"],
                      "semantic_models": [str(semantic_model(tmp_path_factory))], "device": "cpu", "dtype": "float32"}


def test_a_request_names_a_served_detector_or_is_told_which_are(server, service_models):
    _, url, _ = server
    refused = post_multipart(url, photo_bytes("coffee.jpg"), prompt="cup", detector="owlv2-base-patch16")
    assert refused.status_code == 422 and "grounding-dino-tiny" in refused.json()["detail"]
    # served but not downloaded (offline): the model's own problem, 503 with the repo to fetch; the default still answers
    missing = post_multipart(url, photo_bytes("coffee.jpg"), prompt="cup", detector="grounding-dino-tiny")
    assert missing.status_code == 503 and "IDEA-Research/grounding-dino-tiny" in missing.json()["detail"]
    chosen = post_multipart(url, photo_bytes("coffee.jpg"), prompt="cup", detector=str(service_models[1]), box_threshold="0",
                            text_threshold="0", max_detections="1")
    assert chosen.status_code == 200 and len(chosen.json()["detections"]) == 1


def test_an_upload_over_a_megabyte_reaches_the_model_as_sent(server):
    _, url, _ = server
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (700, 900, 3), dtype=np.uint8)).save(buffer, format="PNG")
    assert 1.5 * 2**20 < len(buffer.getvalue()) < MAX_UPLOAD_MB * 2**20
    response = post_multipart(url, buffer.getvalue(), prompt="cat", **LOOSE)
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"height": 700, "width": 900}


def test_preload_loads_the_served_sams_at_start_and_reports_those_that_fail(server):
    _, url, log = server
    text = log.read_text()
    assert f"could not preload SAM {TINY_B}" in text and "could not preload SAM vit_h" in text
    assert f"could not preload SAM {TINY_A}" not in text


def test_json_answer_holds_size_labels_boxes_and_rle_masks(server):
    _, url, _ = server
    response = post_multipart(url, photo_bytes("chelsea.jpg"), prompt="cat, sofa", **LOOSE)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["image"] == {"height": 300, "width": 451}
    assert f"SAM {TINY_A} (encoder width 192)" in payload["model"]
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
    as_json = httpx.post(f"{url}/predict", json=body, timeout=300)
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
    both = post_multipart(url, photo_bytes("coffee.jpg"), prompt="cup", include_drawing="true", **LOOSE).json()
    assert len(both["detections"]) == 4, "the JSON answer, with the drawing beside it"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(both["drawing"])))), drawing)


def test_twenty_concurrent_requests_are_batched_and_all_answered_correctly(server):
    _, url, log = server
    cases = [(name, prompt) for name in ("chelsea.jpg", "coffee.jpg") for prompt in ("cat", "cup, spoon")]
    expected = {case: post_multipart(url, photo_bytes(case[0]), prompt=case[1], **LOOSE).json() for case in cases}
    requests = [cases[i % len(cases)] for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda case: post_multipart(url, photo_bytes(case[0]), prompt=case[1], **LOOSE), requests))
    assert [r.status_code for r in responses] == [200] * 20
    batch_sizes = [int(line.split()[-2]) for line in log.read_text().splitlines() if "lang-sam: a batch of" in line]
    assert max(batch_sizes) > 1, "concurrent requests were batched together"
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
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "cat", "sam_type": "vit_x"}}, 422, "Unknown SAM type"),
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "cat", "format": "gif"}}, 422, "Unknown format"),
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "cat", "max_detections": "2.5"}}, 422, "whole number"),
        ({"files": {"image": ("a.jpg", photo_bytes("chelsea.jpg"))}, "data": {"prompt": "cat", "sam_type": "vit_h"}}, 503, "sam_vit_h_4b8939.pth"),
    ],
)
def test_bad_requests_get_a_4xx_or_503_with_a_message(server, request_kwargs, status, message):
    _, url, _ = server
    response = httpx.post(f"{url}/predict", timeout=300, **request_kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert "Traceback" not in response.text


def test_a_client_written_for_lang_segment_anything_v02_gets_the_drawing(server):
    """v0.2.x's own client posts multipart image, text_prompt, sam_type, box_threshold and text_threshold
    and reads the PNG drawing back; a SAM 2.1 name it sends that is not here gets a 422 listing those that are."""
    _, url, _ = server
    fields = {"text_prompt": "cup", "box_threshold": "0", "text_threshold": "0"}
    response = httpx.post(f"{url}/predict", files={"image": ("coffee.jpg", photo_bytes("coffee.jpg"))}, data=fields, timeout=300)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    drawing = np.asarray(Image.open(io.BytesIO(response.content)))
    assert drawing.shape == (400, 600, 3)
    assert (drawing != np.asarray(Image.open(ASSETS / "coffee.jpg").convert("RGB"))).any(axis=2).mean() > 0.01
    sam2 = httpx.post(f"{url}/predict", files={"image": ("coffee.jpg", photo_bytes("coffee.jpg"))},
                      data={**fields, "sam_type": "sam2.1_hiera_small"}, timeout=300)
    detail = sam2.json()["detail"]  # lang-segment-anything's spelling is ours too; this server just does not serve it
    assert sam2.status_code == 422 and f"SAM 'sam2.1-hiera-small' is not served here; choose one of {TINY_A}, {TINY_B}, vit_h" in detail


def test_fields_of_the_wrong_type_and_unreadable_json_answer_only_themselves(server):
    _, url, _ = server
    image = base64.b64encode(photo_bytes("coffee.jpg")).decode()
    good = {"image": image, "prompt": "cup", "box_threshold": 0, "text_threshold": 0, "max_detections": 2}
    odd = [
        ({**good, "sam_type": ["vit_b"]}, 422, "Unknown SAM type"),
        ({**good, "prompt": {"text": "cup"}}, 400, "prompt"),
        ({**good, "box_threshold": [0.3]}, 422, "box_threshold"),
        ({**good, "format": None, "max_detections": {"n": 2}}, 422, "max_detections"),
        ({**good, "image": 12}, 400, "image"),
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda body: httpx.post(f"{url}/predict", json=body, timeout=300), [good, *(o[0] for o in odd), good]))
    assert answers[0].status_code == answers[-1].status_code == 200, "the valid batch-mates are answered"
    for (_, status, message), response in zip(odd, answers[1:-1]):
        assert response.status_code == status and message in response.json()["detail"], response.text
    huge_number = b'{"prompt": "cup", "box_threshold": ' + b"9" * 5000 + b"}"
    deep = b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for body in (huge_number, deep):
        response = httpx.post(f"{url}/predict", content=body, headers={"content-type": "application/json"}, timeout=300)
        assert response.status_code == 400 and "not valid JSON" in response.json()["detail"]
    assert healthy(url)


def test_multimask_and_nms_fields(server):
    _, url, _ = server
    plain = post_multipart(url, photo_bytes("chelsea.jpg"), prompt="cat", **LOOSE).json()
    multimask = post_multipart(url, photo_bytes("chelsea.jpg"), prompt="cat", multimask_output="true", **LOOSE).json()
    assert [d["box"] for d in multimask["detections"]] == [d["box"] for d in plain["detections"]]
    assert [d["mask"] for d in multimask["detections"]] != [d["mask"] for d in plain["detections"]]
    fewer = post_multipart(url, photo_bytes("chelsea.jpg"), prompt="cat", nms_iou_threshold="0.3",
                           box_threshold="0", text_threshold="0").json()
    assert len(fewer["detections"]) < len(post_multipart(url, photo_bytes("chelsea.jpg"), prompt="cat", box_threshold="0",
                                                         text_threshold="0").json()["detections"])
    bad = post_multipart(url, photo_bytes("chelsea.jpg"), prompt="cat", multimask_output="maybe")
    assert bad.status_code == 422 and "multimask_output must be true or false" in bad.json()["detail"]


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
        responses = list(pool.map(lambda kwargs: httpx.post(f"{url}/predict", timeout=300, **kwargs), [good, bad] * 4))
    assert [r.status_code for r in responses] == [200, 400] * 4
    assert healthy(url)


def test_odd_and_broken_image_files(server, tmp_path):
    _, url, _ = server
    cases = write_image_cases(tmp_path)
    for name, expected in cases.items():
        if expected is not None and name not in ("one-pixel.png", "one-row.png", "cmyk.jpg", "exif-rotated.jpg", "animated.gif", "sixteen-bit.png"):
            continue  # the other readable kinds are the same code path; the model time goes to these
        response = post_multipart(url, (tmp_path / name).read_bytes(), prompt="cat", **LOOSE)
        if expected is None:
            assert response.status_code == 400, (name, response.text)
            assert "uploaded image" in response.json()["detail"], name
        else:
            assert response.status_code == 200, (name, response.text)
            assert response.json()["image"] == {"height": expected[0], "width": expected[1]}, name


def test_a_request_failing_inside_the_model_is_answered_and_the_others_too(server):
    _, url, _ = server
    image = photo_bytes("coffee.jpg")
    kinds = [TINY_A, TINY_B] * 4  # the second file is damaged: loading it fails in the worker
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda sam_type: post_multipart(url, image, prompt="cup", sam_type=sam_type, **LOOSE), kinds))
    for sam_type, response in zip(kinds, responses):
        if sam_type == TINY_A:
            assert response.status_code == 200, response.text
        else:
            assert response.status_code == 503 and f"{TINY_B}.pth" in response.json()["detail"]
    assert healthy(url)


def test_a_slow_client_does_not_hold_up_the_others(server):
    _, url, _ = server
    port = int(url.rsplit(":", 1)[1])
    body = b'{"prompt": "cup", "image": "' + base64.b64encode(photo_bytes("coffee.jpg")) + b'"}'
    slow = socket.create_connection(("127.0.0.1", port), timeout=300)
    slow.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:100])
    try:
        answers = [post_multipart(url, photo_bytes("coffee.jpg"), prompt="cup", **LOOSE) for _ in range(3)]
        assert [a.status_code for a in answers] == [200] * 3
        slow.sendall(body[100:])  # the slow client finishes after the others were answered
        reply = slow.recv(200)
        assert reply.startswith(b"HTTP/1.1 200"), reply
    finally:
        slow.close()


def test_a_hundred_requests_twenty_at_a_time(server):
    _, url, _ = server
    expected = post_multipart(url, photo_bytes("chelsea.jpg"), prompt="cat, sofa", **LOOSE).json()
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: post_multipart(url, photo_bytes("chelsea.jpg"), prompt="cat, sofa", **LOOSE), range(100)))
    assert [r.status_code for r in responses] == [200] * 100
    for response in responses:
        answer = response.json()
        assert [d["label"] for d in answer["detections"]] == [d["label"] for d in expected["detections"]]
        np.testing.assert_allclose([d["box"] for d in answer["detections"]], [d["box"] for d in expected["detections"]], atol=0.05)


class FailingPool:
    """A pool whose model raises on one image, as a failing kernel or a full GPU would."""

    def __init__(self, bad_prompt: str, error: Exception) -> None:
        self.bad_prompt, self.error, self.calls = bad_prompt, error, []

    def predict(self, images, prompts, sam_type, **options):
        self.calls.append(list(prompts))
        if self.bad_prompt in prompts:
            raise self.error
        return [LangSAMResult.from_json({"image": {"height": 1, "width": 1}, "detections": []}) for _ in prompts]

    def describe(self, sam_type, detector=None, semantic=None):
        return f"model {sam_type} + {detector or 'the default detector'}"


@pytest.mark.parametrize(("error", "status"), [(RuntimeError("CUDA error: out of memory"), 500), (InvalidPromptError("no class"), 400)])
def test_predict_batch_isolates_the_request_at_fault(error, status, tmp_path):
    image = np.zeros((1, 1, 3), np.uint8)
    requests = [PredictRequest(image, prompt, TINY_A, 0.3, 0.25, None, "json") for prompt in ("a", "bad", "c")]
    pool = FailingPool("bad", error)
    outputs = predict_batch(pool, [*requests, Rejected(422, "already refused")], EmbeddingStore(tmp_path))
    assert [type(o).__name__ for o in outputs] == ["tuple", "Rejected", "tuple", "Rejected"]
    assert outputs[1].status == status and str(error) in outputs[1].detail and outputs[3].status == 422
    assert pool.calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"]], "one batched call, then one call per request"


def test_mounted_app_and_sigterm_shutdown_leave_no_process(service_environment, tmp_path, tmp_path_factory, auto_dtype):
    """With --with-app one process serves the API and the Gradio app (its Everything tab naming masks
    with the server's semantic model); SIGTERM to that process alone (as docker stop sends) stops
    every worker it started. No dtype is set: /health, the workers and the app run what "auto" means."""
    port = free_port()
    semantic = str(semantic_model(tmp_path_factory))
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "serve", "--port", str(port), "--with-app",
               "--semantic-models", semantic]
    environment = {**{key: value for key, value in service_environment.items() if key != "LANG_SAM_DTYPE"},
                   FORCED_AUTO_VARIABLE: os.environ[FORCED_AUTO_VARIABLE], "PYTHONPATH": os.environ["PYTHONPATH"]}
    process = start_service(command, environment, f"http://127.0.0.1:{port}/health", tmp_path / "server.log")
    dtype = str(auto_dtype).removeprefix("torch.")
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()["dtype"] == dtype
        assert len(session_processes(process.pid)) >= 2, "LitServe runs the model in worker processes"
        page = httpx.get(f"http://127.0.0.1:{port}/app/", timeout=30)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        from gradio_client import Client, handle_file

        client = Client(f"http://127.0.0.1:{port}/app/", verbose=False)
        _, table, download, status = client.predict(
            handle_file(str(ASSETS / "coffee.jpg")), "cup", TINY_A, 0.0, 0.0, 0.5, True, api_name="/predict"
        )
        assert f"SAM {TINY_A} (encoder width 192)" in status and f"on cpu, {dtype}" in status
        direct = httpx.post(f"http://127.0.0.1:{port}/predict", files={"image": ("a.jpg", photo_bytes("coffee.jpg"))},
                            data={"prompt": "cup", "box_threshold": "0", "text_threshold": "0", "nms_iou_threshold": "0.5",
                                  "multimask_output": "true"}, timeout=300).json()
        assert json.loads(Path(download).read_text()) == {"image": direct["image"], "detections": direct["detections"]}, (
            "the app hands on the server's answer, options included, as it came")
        with pytest.raises(Exception, match=f"{TINY_A} takes no exemplar boxes; SAM 3 does"):  # the boxes reach the server
            client.predict(handle_file(str(ASSETS / "coffee.jpg")), "cup", TINY_A, '{"exemplars": [[10, 10, 50, 50]]}',
                           api_name="/exemplars")
        _, masks_table, masks_download, _ = client.predict(
            handle_file(str(ASSETS / "coffee.jpg")), TINY_A, 2, 0.0, 0.0, semantic, api_name="/everything")
        everything = httpx.post(f"http://127.0.0.1:{port}/predict", files={"image": ("a.jpg", photo_bytes("coffee.jpg"))},
                                data={"mode": "everything", "points_per_side": "2", "pred_iou_thresh": "0",
                                      "stability_score_thresh": "0", "semantic": semantic}, timeout=300).json()
        assert json.loads(Path(masks_download).read_text()) == {"image": everything["image"], "masks": everything["masks"]}
        assert len(masks_table["data"]) == len(everything["masks"]) > 0
        assert all("label" in mask for mask in everything["masks"]), "named by the server's semantic model"
        not_served = httpx.post(f"http://127.0.0.1:{port}/predict", files={"image": ("a.jpg", photo_bytes("coffee.jpg"))},
                                data={"prompt": "cup", "sam_type": TINY_B}, timeout=300)
        assert not_served.status_code == 422, "only the SAM started with is served by default"
        assert f"SAM '{TINY_B}' is not served here; choose one of {TINY_A}" in not_served.json()["detail"]
        assert len(table["data"]) > 0 and {row[0] for row in table["data"]} == {"cup"}
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        assert wait_until_gone(process.pid, timeout=30) == []
    finally:
        stop_session(process)


def test_the_server_imports_gradio_only_to_mount_the_app():
    import subprocess

    code = ("import sys; from lang_sam.interfaces.server import build_server, serve; "
            "from lang_sam.interfaces.server import api, guard, client, validation; assert 'gradio' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_mode_everything_answers_the_generators_masks(server, service_models):
    from lang_sam.segmenter import SamAutomaticMaskGenerator, build_sam

    _, url, _ = server
    fields = {"mode": "everything", "points_per_side": "2", "pred_iou_thresh": "0", "stability_score_thresh": "0",
              "min_mask_region_area": "30"}
    response = post_multipart(url, photo_bytes("coffee.jpg"), **fields)
    assert response.status_code == 200, response.text
    payload = response.json()
    image = np.asarray(Image.open(ASSETS / "coffee.jpg").convert("RGB"))
    expected = SamAutomaticMaskGenerator(build_sam(checkpoint=service_models[0] / f"{TINY_A}.pth"), points_per_side=2,
                                         pred_iou_thresh=0.0, stability_score_thresh=0.0, min_mask_region_area=30).generate(image)
    expected.sort(key=lambda record: -record["area"])
    assert payload["image"] == {"height": 400, "width": 600} and f"SAM {TINY_A}" in payload["model"]
    assert [m["area"] for m in payload["masks"]] == [r["area"] for r in expected] and len(expected) > 0
    for written, record in zip(payload["masks"], expected):
        rle = {"size": written["segmentation"]["size"], "counts": written["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), record["segmentation"])
    drawing = post_multipart(url, photo_bytes("coffee.jpg"), format="png", **fields)
    assert drawing.status_code == 200 and np.asarray(Image.open(io.BytesIO(drawing.content))).shape == image.shape
    too_many = post_multipart(url, photo_bytes("coffee.jpg"), mode="everything", points_per_side="500")
    assert too_many.status_code == 422 and "points_per_side must be between 1 and 64" in too_many.json()["detail"]
    unknown = post_multipart(url, photo_bytes("coffee.jpg"), mode="panorama", prompt="cup")
    assert unknown.status_code == 422 and "Unknown mode" in unknown.json()["detail"]


def test_mode_everything_names_the_masks_with_a_served_semantic_model(server, tmp_path_factory):
    """Each mask's label is the class holding most of its pixels in the universal model's semantic
    map (computed here with transformers' own post-processing), label_share that class's share."""
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor

    from tests.families.conftest import LABELS

    _, url, _ = server
    folder = semantic_model(tmp_path_factory)
    fields = {"mode": "everything", "points_per_side": "2", "pred_iou_thresh": "0", "stability_score_thresh": "0",
              "min_mask_region_area": "30"}
    response = post_multipart(url, photo_bytes("coffee.jpg"), semantic=str(folder), **fields)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["model"].endswith(f"; names from {folder}") and payload["masks"]
    image = np.asarray(Image.open(ASSETS / "coffee.jpg").convert("RGB"))
    processor = Mask2FormerImageProcessor.from_pretrained(folder)
    model = Mask2FormerForUniversalSegmentation.from_pretrained(folder).eval()
    with torch.inference_mode():
        outputs = model(**processor(images=image, return_tensors="pt"))
    class_map = processor.post_process_semantic_segmentation(outputs, target_sizes=[image.shape[:2]])[0].numpy()
    for written in payload["masks"]:
        rle = {"size": written["segmentation"]["size"], "counts": written["segmentation"]["counts"].encode()}
        counts = np.bincount(class_map[mask_utils.decode(rle).astype(bool)], minlength=len(LABELS))
        assert written["label"] == LABELS[counts.argmax()]
        assert written["label_share"] == pytest.approx(counts.max() / counts.sum(), abs=1e-6)
    assert len(np.unique(class_map)) > 1 and any(mask["label_share"] < 1 for mask in payload["masks"]), \
        "masks over more than one class: the vote is a real choice"
    refused = post_multipart(url, photo_bytes("coffee.jpg"), semantic="oneformer-ade20k-swin-tiny", **fields)
    assert refused.status_code == 422 and str(folder) in refused.json()["detail"]


def test_clicks_boxes_and_a_mask_in_json_or_multipart(server, service_models):
    from lang_sam import LangSAM

    _, url, _ = server
    image = photo_bytes("chelsea.jpg")
    body = {"image": base64.b64encode(image).decode(), "points": [[200, 150], [300, 100]], "point_labels": [1, 0],
            "boxes": [[10, 10, 100, 120]]}
    as_json = httpx.post(f"{url}/predict", json=body, timeout=300)
    assert as_json.status_code == 200, as_json.text
    multipart = post_multipart(url, image, points="200,150;300,100", point_labels="1,0", boxes="10,10,100,120")
    assert multipart.status_code == 200 and multipart.json()["detections"] == as_json.json()["detections"]
    model = LangSAM(sam_checkpoint=service_models[0] / f"{TINY_A}.pth", detector=service_models[1], device="cpu", dtype="float32")
    photo = np.asarray(Image.open(ASSETS / "chelsea.jpg").convert("RGB"))
    expected = model.predict(photo, points=[[200, 150], [300, 100]], point_labels=[1, 0], boxes=[[10, 10, 100, 120]])
    found = LangSAMResult.from_json(as_json.json())
    assert found.phrases == expected.phrases and np.array_equal(found.masks, expected.masks)
    previous = as_json.json()["detections"][0]["mask"]
    refined = httpx.post(f"{url}/predict", json={**body, "boxes": None, "mask": previous}, timeout=300)
    assert refined.status_code == 200, refined.text
    from lang_sam.segmenter.processing import mask_to_low_res_logits

    expected = model.predict(photo, points=[[200, 150], [300, 100]], point_labels=[1, 0],
                             mask_input=mask_to_low_res_logits(expected.masks[0]))
    assert np.array_equal(LangSAMResult.from_json(refined.json()).masks, expected.masks)
    for fields, message in ((dict(points="1,2", point_labels="2"), "point_labels are 1 (object) or 0"),
                            (dict(points="9000,2"), "outside the 451x300 image"),
                            (dict(points="1,2", mask='{"size": [5, 5], "counts": "i0"}'), "send the mask of this image")):
        response = post_multipart(url, image, **fields)
        assert response.status_code == 400 and message in response.json()["detail"], response.text


def test_embed_once_then_decode_clicks_by_image_id(server, service_models):
    """/embed answers the image's content hash; /decode with clicks and boxes on it answers what
    /predict answers with the image and the same prompts, by JSON or multipart, with no image sent."""
    from lang_sam.io.images import load_image
    from lang_sam.pipeline import image_key

    _, url, _ = server
    image = photo_bytes("chelsea.jpg")
    embedded = httpx.post(f"{url}/embed", files={"image": ("photo.jpg", image, "image/jpeg")}, data={"sam_type": TINY_A},
                          timeout=300)
    assert embedded.status_code == 200, embedded.text
    answer = embedded.json()
    assert answer["image_id"] == image_key(load_image(image)) and answer["image"] == {"height": 300, "width": 451}
    assert answer["sam_type"] == TINY_A and answer["cached"] is False
    again = httpx.post(f"{url}/embed", json={"image": base64.b64encode(image).decode()}, timeout=300).json()
    assert again["image_id"] == answer["image_id"] and again["cached"] is True, "the same pixels are encoded once"
    prompts = {"points": [[200, 150], [300, 100]], "point_labels": [1, 0], "boxes": [[10, 10, 100, 120]]}
    expected = httpx.post(f"{url}/predict", json={"image": base64.b64encode(image).decode(), **prompts}, timeout=300).json()
    decoded = httpx.post(f"{url}/decode", json={"image_id": answer["image_id"], **prompts}, timeout=300)
    assert decoded.status_code == 200, decoded.text
    assert decoded.json()["detections"] == expected["detections"] and decoded.json()["image_id"] == answer["image_id"]
    multipart = httpx.post(f"{url}/decode", data={"image_id": answer["image_id"], "points": "200,150;300,100",
                                                  "point_labels": "1,0", "boxes": "10,10,100,120"}, timeout=300)
    assert multipart.status_code == 200 and multipart.json()["detections"] == expected["detections"]
    as_mode = httpx.post(f"{url}/predict", json={"mode": "decode", "image_id": answer["image_id"], **prompts}, timeout=300)
    assert as_mode.status_code == 200 and as_mode.json()["detections"] == expected["detections"]
    single = httpx.post(f"{url}/decode", json={"image_id": answer["image_id"], "points": [[200, 150]], "multimask_output": False},
                        timeout=300).json()
    one_of_three = httpx.post(f"{url}/decode", json={"image_id": answer["image_id"], "points": [[200, 150]]}, timeout=300).json()
    assert single["detections"][0]["mask_score"] != one_of_three["detections"][0]["mask_score"], "multimask_output reaches SAM"
    refined = httpx.post(f"{url}/decode", json={"image_id": answer["image_id"], "points": [[200, 150]],
                                                "mask": one_of_three["detections"][0]["mask"]}, timeout=300)
    assert refined.status_code == 200 and refined.json()["detections"][0]["mask"] != one_of_three["detections"][0]["mask"]


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/decode", {"image_id": "0" * 32, "points": [[1, 2]]}, 404, "POST the image to /embed again"),
    ("/decode", {"image_id": "not-an-id", "points": [[1, 2]]}, 422, "image_id must be the id that POST /embed answered"),
    ("/decode", {"image_id": "0" * 32}, 400, '/decode needs "points"'),
    ("/decode", {"image_id": "0" * 32, "points": [[1, 2]], "prompt": "cat"}, 400, "no image or text prompt"),
    ("/decode", {"image_id": "0" * 32, "points": [[1, 2]], "format": "png"}, 422, "answers JSON only"),
    ("/decode", {"image_id": "0" * 32, "points": [[1, 2]], "mode": "text"}, 400, "leave the mode field out"),
    ("/embed", {"prompt": "cat"}, 400, 'Send the image as a multipart file field "image"'),
    ("/embed", {"image": ""}, 400, "The uploaded image is empty"),
    ("/embed", {"image": base64.b64encode(photo_bytes("coffee.jpg")).decode(), "sam_type": "vit_q"}, 422, "vit_q"),
])
def test_bad_embed_and_decode_requests_name_the_field(server, path, body, status, message):
    _, url, _ = server
    response = httpx.post(f"{url}{path}", json=body, timeout=60)
    assert response.status_code == status and message in response.json()["detail"], response.text


@pytest.mark.parametrize(("counts", "message"), [
    ("", "add up to 0 pixels, but its size 400x600 has 240000"),
    ("1", "add up to 1 pixels"),
    ("`0", "add up to 16 pixels"),  # the counts of a 4x4 mask
    ("x", "cannot be read (it holds characters outside the counts alphabet"),
    ("i", "cannot be read (its last number is cut short)"),
])
def test_a_mask_whose_rle_counts_are_not_its_size_is_a_400(server, counts, message):
    """Such counts were decoded by pycocotools without a word (counts "" as an empty mask: 200)."""
    _, url, _ = server
    image_id = httpx.post(f"{url}/embed", files={"image": ("photo.jpg", photo_bytes("coffee.jpg"), "image/jpeg")},
                          timeout=300).json()["image_id"]
    response = httpx.post(f"{url}/decode", json={"image_id": image_id, "points": [[200, 150]],
                                                 "mask": {"size": [400, 600], "counts": counts}}, timeout=300)
    assert response.status_code == 400 and message in response.json()["detail"], response.text


def test_a_decode_outside_the_embedded_image_is_refused_with_its_size(server):
    _, url, _ = server
    image_id = httpx.post(f"{url}/embed", files={"image": ("photo.jpg", photo_bytes("coffee.jpg"), "image/jpeg")},
                          timeout=300).json()["image_id"]
    response = httpx.post(f"{url}/decode", json={"image_id": image_id, "points": [[9000, 5]]}, timeout=60)
    assert response.status_code == 400 and "outside the" in response.json()["detail"], response.text


def test_the_embedding_store_keeps_the_most_recently_used_across_instances(tmp_path):
    """Two workers are two EmbeddingStores on one folder: what one puts the other reads; the least
    recently used go first; nothing but whole files is ever there."""
    import time

    import torch

    from lang_sam.vocabulary import ImageEmbedding

    writer, reader = EmbeddingStore(tmp_path, capacity=2), EmbeddingStore(tmp_path, capacity=2)
    embeddings = [ImageEmbedding(torch.randn(1, 256, 64, 64), (300, 451), (681, 1024)) for _ in range(3)]
    writer.put("vit_b", "a" * 32, embeddings[0])
    time.sleep(0.01)  # mtime order; no timing is asserted
    writer.put("vit_b", "b" * 32, embeddings[1])
    time.sleep(0.01)
    read = reader.get("vit_b", "a" * 32)  # used now: "b" becomes the oldest
    assert torch.equal(read.features, embeddings[0].features) and read.original_size == (300, 451) and read.input_size == (681, 1024)
    assert reader.get("vit_l", "a" * 32) is None, "embeddings are per SAM"
    time.sleep(0.01)
    reader.put("vit_b", "c" * 32, embeddings[2])
    assert writer.get("vit_b", "b" * 32) is None and writer.touch("vit_b", "a" * 32) and writer.touch("vit_b", "c" * 32)
    assert sorted(path.suffix for path in tmp_path.iterdir()) == [".safetensors", ".safetensors"], "no temporary file left"


def test_more_points_or_boxes_than_the_limits_are_refused_before_any_model_runs(server):
    """100,000 clicks on /decode (1.6 MB of JSON) once held the worker for minutes: now a 422 naming
    the limit and its flag, and the next request is answered as usual."""
    _, url, _ = server
    defaults = Limits()
    image_id = httpx.post(f"{url}/embed", files={"image": ("photo.jpg", photo_bytes("coffee.jpg"), "image/jpeg")},
                          timeout=300).json()["image_id"]
    many = httpx.post(f"{url}/decode", json={"image_id": image_id, "points": [[5, 5]] * 100_000}, timeout=120)
    assert many.status_code == 422, many.text
    assert "asks for 100000 points" in many.json()["detail"] and f"at most {defaults.max_points}" in many.json()["detail"]
    assert "--max-points" in many.json()["detail"]
    as_text = post_multipart(url, photo_bytes("coffee.jpg"), points=";".join(["5,5"] * (defaults.max_points + 1)))
    assert as_text.status_code == 422 and "--max-points" in as_text.json()["detail"], as_text.text
    boxes = post_multipart(url, photo_bytes("coffee.jpg"), boxes=";".join(["1,1,9,9"] * (defaults.max_boxes + 1)))
    assert boxes.status_code == 422 and f"asks for {defaults.max_boxes + 1} boxes" in boxes.json()["detail"]
    assert "--max-boxes" in boxes.json()["detail"]
    at_the_limit = httpx.post(f"{url}/decode", json={"image_id": image_id, "points": [[5, 5]] * defaults.max_points}, timeout=300)
    assert at_the_limit.status_code == 200 and len(at_the_limit.json()["detections"]) == 1, at_the_limit.text


def test_everything_over_the_servers_point_limit_is_refused_and_at_it_answered(server):
    """--max-everything-points bounds points_per_side squared times the crops (1, 5, 21): the
    issue's 64 per side with 2 crop layers (86,016 points, 30 minutes of worker) is a 422 at once."""
    _, url, _ = server
    loose = {"mode": "everything", "pred_iou_thresh": "0", "stability_score_thresh": "0"}
    at_the_limit = post_multipart(url, photo_bytes("coffee.jpg"), points_per_side="4", **loose)
    assert at_the_limit.status_code == 200 and at_the_limit.json()["masks"], at_the_limit.text
    for fields, decoded in (({"points_per_side": "5"}, 25), ({"points_per_side": "2", "crop_n_layers": "1"}, 20),
                            ({"points_per_side": "64", "crop_n_layers": "2"}, 86_016)):
        over = post_multipart(url, photo_bytes("coffee.jpg"), **loose, **fields)
        assert over.status_code == 422, over.text
        detail = over.json()["detail"]
        assert f"asks for {decoded} points to decode" in detail and f"at most {MAX_EVERYTHING_POINTS}" in detail
        assert "--max-everything-points" in detail
    crops = post_multipart(url, photo_bytes("coffee.jpg"), points_per_side="1", crop_n_layers="3", **loose)
    assert crops.status_code == 422 and "crop_n_layers must be between 0 and 2" in crops.json()["detail"]
    assert "--max-crop-layers" in crops.json()["detail"]
    assert healthy(url)


def test_an_everything_client_that_leaves_stops_its_work_at_the_next_point_batch(service_environment, tmp_path):
    """The issue's 64 per side with 2 crop layers (86,016 points: half an hour of this worker),
    allowed here by the flag: the client gives up after 3 s, the work stops at the next batch of
    points, and the next request is answered."""
    port = free_port()
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "serve", "--port", str(port),
               "--max-everything-points", "86016"]
    log = tmp_path / "server.log"
    process = start_service(command, service_environment, f"http://127.0.0.1:{port}/health", log)
    url = f"http://127.0.0.1:{port}"
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/predict", files={"image": ("photo.jpg", photo_bytes("coffee.jpg"), "image/jpeg")},
                       data={"mode": "everything", "points_per_side": "64", "crop_n_layers": "2"},
                       timeout=httpx.Timeout(300, read=3))
        assert wait_for(lambda: "a mode=everything client left after" in log.read_text(), timeout=120), log.read_text()[-3000:]
        following = httpx.post(f"{url}/predict", files={"image": ("photo.jpg", photo_bytes("coffee.jpg"), "image/jpeg")},
                               data={"prompt": "cup", **LOOSE}, timeout=120)
        assert following.status_code == 200 and len(following.json()["detections"]) == 4, following.text
    finally:
        stop_session(process)


def test_everything_points_counts_the_points_the_generator_decodes():
    from lang_sam.segmenter.automatic_mask_generator import crop_boxes, layer_point_grids

    for side, layers in ((1, 0), (4, 1), (64, 2)):
        grids = layer_point_grids(side, layers, 1)
        crops = crop_boxes(400, 600, layers, 512 / 1500)
        assert everything_points(side, layers) == sum(len(grids[layer]) for _, layer in crops)


def test_the_readme_documents_each_request_limit_with_its_default():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    defaults = Limits()
    for name, flag in LIMIT_FLAGS.items():
        if name.endswith("_bytes") or name == "max_image_pixels":  # documented with the upload limits
            continue
        assert re.search(rf"\| `{flag}` +\| {getattr(defaults, name)} +\|", readme), flag


@pytest.mark.parametrize(("flags", "message"), [
    (["--max-points", "0"], "--max-points must be a whole number >= 1, got 0"),
    (["--max-crop-layers", "-1"], "--max-crop-layers must be a whole number >= 0, got -1"),
    (["--max-batch-size", "0"], "--max-batch-size must be >= 1, got 0"),
    (["--timeout", "nan"], "--timeout must be a number > 0, got nan"),
])
def test_serve_refuses_numbers_out_of_range_before_any_model_loads(flags, message, tmp_path):
    import subprocess

    environment = {**os.environ, "LANG_SAM_CHECKPOINTS": str(tmp_path), "HF_HUB_OFFLINE": "1"}  # no model here to load
    done = subprocess.run([sys.executable, "-m", "lang_sam.interfaces.cli", "serve", "--port", str(free_port()), *flags],
                          check=False, capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 2 and f"lang-sam: {message}." in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_rle_counts_are_read_as_pycocotools_writes_them():
    from lang_sam.io.rle import rle_run_lengths

    rng = np.random.default_rng(0)
    for height, width in ((1, 1), (7, 3), (40, 61), (300, 451)):
        for share in (0.0, 0.02, 0.5, 1.0):
            mask = rng.random((height, width)) < share
            counts = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()
            runs = rle_run_lengths(counts)
            rebuilt = np.repeat(np.arange(len(runs)) % 2, runs).reshape(width, height).T
            assert np.array_equal(rebuilt, mask)


def test_a_geotiff_upload_is_answered_with_the_tiling_writers_geojson(server, service_models, tmp_path):
    """format=geojson: a small GeoTIFF (UTM, 0.5 m pixels) segmented in 256-pixel tiles by the server
    answers what lang_sam.tiling's GeoJSON writer writes for the same run here; bad rasters and
    tilings get a 4xx that says why."""
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    from lang_sam.pipeline import LangSAM
    from lang_sam.tiling import RasterReader, segment_tiles
    from lang_sam.tiling.outputs import write_vectors
    from tests.conftest import synthetic_image

    _, url, _ = server
    path = tmp_path / "small.tif"
    with rasterio.open(path, "w", driver="GTiff", width=420, height=300, count=3, dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(500000.0, 4100000.0, 0.5, 0.5)) as dataset:
        dataset.write(synthetic_image(300, 420, seed=3).transpose(2, 0, 1))

    def post(raster: bytes, **fields) -> httpx.Response:
        return httpx.post(f"{url}/predict", files={"image": ("small.tif", raster, "image/tiff")}, timeout=300,
                          data={"prompt": "car, tree", "format": "geojson", "tile": "256", "overlap": "32", **LOOSE, **fields})

    response = post(path.read_bytes())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    answer = response.json()
    model = LangSAM(sam_checkpoint=service_models[0] / f"{TINY_A}.pth", detector=service_models[1], device="cpu", dtype="float32")
    with RasterReader(path) as reader:
        found = segment_tiles(model, reader, "car, tree", tile=256, overlap=32, box_threshold=0.0, text_threshold=0.0,
                              max_detections=4)
        write_vectors(tmp_path / "objects.geojson", found, reader.transform, reader.crs)
    expected = json.loads((tmp_path / "objects.geojson").read_text())
    assert answer["type"] == "FeatureCollection" and f"SAM {TINY_A}" in answer["model"]
    assert answer["crs"] == expected["crs"] and answer["crs"]["properties"]["name"].endswith("EPSG::32633")
    assert len(answer["features"]) == len(found) > 1 and answer["features"] == expected["features"]
    properties = [feature["properties"] for feature in answer["features"]]
    assert [p["id"] for p in properties] == found.data["object_id"].tolist() and {"label", "box_score", "mask_score", "area"} <= properties[0].keys()

    truncated = post(path.read_bytes()[:2000])
    assert truncated.status_code == 400 and "cannot be read" in truncated.json()["detail"], truncated.text
    assert "overlap must be" in post(path.read_bytes(), overlap="200").json()["detail"]
    everything = post(path.read_bytes(), mode="everything", points_per_side="2")
    assert everything.status_code == 422 and "answers json or png" in everything.json()["detail"]
    large = tmp_path / "large.tif"
    with rasterio.open(large, "w", driver="GTiff", width=2000, height=1500, count=1, dtype="uint8", compress="deflate") as dataset:
        dataset.write(np.zeros((1, 1500, 2000), np.uint8))
    too_many_pixels = post(large.read_bytes())
    assert too_many_pixels.status_code == 400 and "2000x1500 pixels" in too_many_pixels.json()["detail"], too_many_pixels.text


def test_an_api_used_without_build_server_keeps_its_embeddings_in_a_server_folder_of_its_own(
        service_environment, tmp_path, monkeypatch):
    """A LangSAMAPI given to a LitServer of the user's own has no run folder from build_server: it
    makes one, as TrackAPI does, and /embed's store lives in that folder's embeddings/."""
    import tempfile

    from lang_sam.interfaces.server.api import LangSAMAPI
    from lang_sam.settings import Settings

    for name in ("LANG_SAM_CHECKPOINTS", "LANG_SAM_DETECTOR", "LANG_SAM_SAM_TYPE", "LANG_SAM_DEVICE", "LANG_SAM_DTYPE"):
        monkeypatch.setenv(name, service_environment[name])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    api = LangSAMAPI(Settings.from_environment(), Limits())
    api.setup("cpu")
    (run,) = tmp_path.iterdir()
    assert run.name.startswith("lang-sam-server-") and api.files.root == str(run)
    assert api.store.folder == run / "embeddings" and api.store.folder.is_dir()
