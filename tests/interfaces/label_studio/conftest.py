"""A real Label Studio for the tests: PyPI's label-studio, installed once into a cached virtualenv
(~/.cache/lang-sam-tests/label-studio-VERSION, reused while present), started once per test session
on 127.0.0.1 with sqlite in a fresh data folder, in a session of its own that is stopped afterwards.
It keeps the ML backend protocol's other side honest: Label Studio's own client calls the backend."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import SHARED_DATA
from tests.services import free_port, start_service, stop_session

LABEL_STUDIO_VERSION = "1.23.2"
CACHE = Path(os.environ.get("LANG_SAM_TEST_CACHE", Path.home() / ".cache" / "lang-sam-tests"))
SHARED_PHOTOS = SHARED_DATA / "demo-images"
TOKEN = "lang-sam-test-token-0123456789"  # a legacy API token, enabled for this organization at start


@dataclass(frozen=True)
class LabelStudio:
    """A running Label Studio: url, its virtualenv's python (LS's own label-studio-sdk), a client
    authorised with TOKEN, and what it cost: install_seconds (0 when the virtualenv was cached) and
    start_seconds (until /health answered)."""

    url: str
    python: Path
    client: httpx.Client
    install_seconds: float
    start_seconds: float


def installed_label_studio() -> tuple[Path, float]:
    """The virtualenv holding label-studio==LABEL_STUDIO_VERSION and the seconds its install took (0:
    cached). A marker written after pip succeeds says it is whole: a stopped install is built again."""
    venv = CACHE / f"label-studio-{LABEL_STUDIO_VERSION}"
    marker = venv / "lang-sam-installed"
    if marker.is_file():
        return venv, 0.0
    started = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"label-studio=={LABEL_STUDIO_VERSION}"],
                             capture_output=True, text=True, check=False)
    if install.returncode != 0:
        pytest.skip(f"label-studio=={LABEL_STUDIO_VERSION} could not be installed from PyPI: {install.stderr[-500:]}")
    marker.write_text(LABEL_STUDIO_VERSION)
    return venv, time.monotonic() - started


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """Label Studio LABEL_STUDIO_VERSION on 127.0.0.1 with sqlite, an admin whose legacy token is
    TOKEN, and ML backends on this machine allowed (ML_BLOCK_LOCAL_IP=false for the backend's URL,
    SSRF_PROTECTION_ENABLED=false for the webhook Label Studio adds with it, as users running both
    on one machine set them). Skipped when the shared photos the tests import are absent."""
    if not SHARED_PHOTOS.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_PHOTOS} (only present beside the project checkout)")
    venv, install_seconds = installed_label_studio()
    data = tmp_path_factory.mktemp("label-studio-data")
    port = free_port()
    environment = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data), "HOME": str(data), "LATEST_VERSION_CHECK": "false",
                   "COLLECT_ANALYTICS": "false", "ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false",
                   "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
                   "DJANGO_DB": "sqlite"}
    command = [str(venv / "bin" / "label-studio"), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port),
               "--internal-host", "127.0.0.1", "--username", "lang-sam@example.com", "--password", "lang-sam-test",
               "--user-token", TOKEN, "--enable-legacy-api-token"]
    started = time.monotonic()
    process = start_service(command, environment, f"http://127.0.0.1:{port}/health", data / "label-studio.log", timeout=300)
    start_seconds = time.monotonic() - started
    print(f"label-studio {LABEL_STUDIO_VERSION}: install {install_seconds:.0f} s, start {start_seconds:.0f} s", file=sys.stderr)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {TOKEN}"}, timeout=300) as client:
        try:
            yield LabelStudio(url, venv / "bin" / "python", client, install_seconds, start_seconds)
        finally:
            stop_session(process)
