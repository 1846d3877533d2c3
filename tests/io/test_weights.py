"""SAM checkpoint search order and downloads, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest

from lang_sam import CheckpointError, InvalidOptionError
from lang_sam.io import weights
from lang_sam.io.weights import find_sam_checkpoint
from lang_sam.registry import OfficialSam

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = PAYLOAD
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path.startswith("/interrupted"):
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(weights.CHECKPOINT_DIR_VARIABLE, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def serve_as_vit_b(monkeypatch, url: str, sha256: str) -> None:
    official = weights.SAM_MODELS["vit_b"]
    monkeypatch.setitem(weights.SAM_MODELS, "vit_b", OfficialSam("vit_b", official.architecture, official.file_name, url, sha256, official.parameters))


def test_official_urls_and_hashes():
    assert weights.SAM_MODELS["vit_h"].url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth"
    assert weights.SAM_MODELS["vit_b"].sha256 == "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"
    assert {name: entry.file_name for name, entry in weights.SAM_MODELS.items()} == {
        "vit_h": "sam_vit_h_4b8939.pth",
        "vit_l": "sam_vit_l_0b3195.pth",
        "vit_b": "sam_vit_b_01ec64.pth",
    }


def test_good_download_lands_in_the_torch_hub_cache(server, hub, monkeypatch):
    serve_as_vit_b(monkeypatch, f"{server}/good", hashlib.sha256(PAYLOAD).hexdigest())
    path = find_sam_checkpoint("vit_b")
    assert path == hub / "sam_vit_b_01ec64.pth"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in hub.iterdir()) == ["sam_vit_b_01ec64.pth"], "no temporary file left"


def test_wrong_hash_leaves_nothing(server, hub, monkeypatch):
    serve_as_vit_b(monkeypatch, f"{server}/good", "0" * 64)
    with pytest.raises(CheckpointError, match="SHA256.*discarded"):
        find_sam_checkpoint("vit_b")
    assert list(hub.iterdir()) == []


def test_interrupted_download_leaves_nothing(server, hub, monkeypatch):
    serve_as_vit_b(monkeypatch, f"{server}/interrupted", hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(CheckpointError, match="sam_vit_b_01ec64.pth"):
        find_sam_checkpoint("vit_b")
    assert list(hub.iterdir()) == []


def test_no_network_names_file_url_and_folder(hub, monkeypatch):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"http://127.0.0.1:{port}/sam_vit_b_01ec64.pth"
    serve_as_vit_b(monkeypatch, url, "0" * 64)
    with pytest.raises(CheckpointError) as error:
        find_sam_checkpoint("vit_b")
    message = str(error.value)
    assert "sam_vit_b_01ec64.pth" in message and url in message and str(hub) in message
    assert weights.CHECKPOINT_DIR_VARIABLE in message


def test_search_order_explicit_then_folder_then_variable_then_hub(tmp_path, hub, monkeypatch):
    serve_as_vit_b(monkeypatch, "http://127.0.0.1:9/never-used", "0" * 64)
    hub.mkdir(parents=True)
    (hub / "sam_vit_b_01ec64.pth").write_bytes(b"hub")
    assert find_sam_checkpoint("vit_b") == hub / "sam_vit_b_01ec64.pth"
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "sam_vit_b_01ec64.pth").write_bytes(b"variable")
    monkeypatch.setenv(weights.CHECKPOINT_DIR_VARIABLE, str(folder))
    assert find_sam_checkpoint("vit_b") == folder / "sam_vit_b_01ec64.pth"
    given = tmp_path / "given"
    given.mkdir()
    (given / "sam_vit_b_01ec64.pth").write_bytes(b"given")
    assert find_sam_checkpoint("vit_b", checkpoint_dir=given) == given / "sam_vit_b_01ec64.pth"
    explicit = tmp_path / "anywhere.pth"
    explicit.write_bytes(b"explicit")
    assert find_sam_checkpoint("vit_b", checkpoint=explicit) == explicit


def test_missing_explicit_path_and_no_download(tmp_path, hub):
    with pytest.raises(CheckpointError, match="does not exist"):
        find_sam_checkpoint("vit_b", checkpoint=tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="downloading is turned off"):
        find_sam_checkpoint("vit_b", download=False)
    with pytest.raises(InvalidOptionError, match="Unknown SAM type"):
        find_sam_checkpoint("vit_x")
