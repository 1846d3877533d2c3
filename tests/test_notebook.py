"""The notebooks' code cells run as written, against small random checkpoints named by environment
variables (as a user's run would use the official weights), so they cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str) -> dict:
    notebook = json.loads((NOTEBOOKS / name).read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)  # noqa: S102 - the project's own notebook
    return namespace


def test_segment_anything_notebook_runs(monkeypatch, sam_files):
    monkeypatch.chdir(NOTEBOOKS)
    monkeypatch.setenv("LANG_SAM_SAM_CHECKPOINT", str(sam_files[0]))
    namespace = run_notebook("segment_anything.ipynb")
    image = namespace["image"]
    assert namespace["masks"].shape == (3, 1, *image.shape[:2])
    assert namespace["overlay"].shape == image.shape


def test_lang_sam_demo_notebook_runs(monkeypatch, sam_files, tiny_detector_dir):
    monkeypatch.chdir(NOTEBOOKS)
    monkeypatch.delenv("LANG_SAM_SAM_TYPE", raising=False)
    monkeypatch.setenv("LANG_SAM_SAM_CHECKPOINT", str(sam_files[0]))
    monkeypatch.setenv("LANG_SAM_DETECTOR", str(tiny_detector_dir))
    namespace = run_notebook("lang_sam_demo.ipynb")
    result = namespace["result"]
    assert namespace["drawing"].shape == (300, 451, 3)
    assert len(namespace["exported"]["detections"]) == result.num_detections == len(namespace["detections"])
    assert set(result.phrases) <= {"cat", "sofa"}
