"""The files the app offers for download: one temporary folder per app, the newest answers kept."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
from PIL import Image


class DownloadFolder:
    """The JSON downloads of one app: a temporary folder removed when the app's process ends, that
    keeps only the newest `keep` files (Gradio copies each into its own cache when it answers), so
    a long-running app does not fill the disk."""

    def __init__(self, keep: int = 64) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="lang-sam-app-")
        self.path = Path(self._folder.name)
        self.keep = keep

    def write(self, exported: dict) -> str:
        """Write one answer's JSON (LangSAMResult.to_json) as a download; return its path."""
        path = self._new_file("detections.json")
        path.write_text(json.dumps(exported, indent=1))
        return str(path)

    def write_drawing(self, drawing: np.ndarray) -> str:
        """A drawing as an uncompressed BMP (a few milliseconds, where Gradio's PNG encoding of an
        array takes a quarter of a second; the same pixels): what a click answers with; its path."""
        path = self._new_file("drawing.bmp")
        Image.fromarray(drawing).save(path, format="BMP")
        return str(path)

    def new_folder(self) -> Path:
        """A new empty folder for one answer's files (the oldest answers beyond keep removed)."""
        folder = self.path / uuid.uuid4().hex  # one folder per answer: the download keeps its name
        folder.mkdir()
        answers = sorted(self.path.iterdir(), key=lambda entry: entry.stat().st_mtime_ns)
        for old in answers[: max(0, len(answers) - self.keep)]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def _new_file(self, name: str) -> Path:
        return self.new_folder() / name
