"""The notebooks' code cells run as written, against small random checkpoints named by environment
variables (as a user's run would use the official weights), so they cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lang_sam import LangSAM
from lang_sam.drawing import draw_image
from lang_sam.segmenter import SamPredictor, build_sam

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
    # the same calls made here, on the same file, give what the notebook shows
    predictor = SamPredictor(build_sam(checkpoint=sam_files[0]))
    predictor.set_image(image)
    masks, _, _ = predictor.predict_torch(boxes=namespace["boxes"], multimask_output=False, prompts_in_image_pixels=True)
    assert namespace["masks"].shape == (3, 1, *image.shape[:2]) and torch.equal(namespace["masks"], masks)
    first = masks[0, 0].numpy()
    expected = image.copy()
    expected[first] = (0.5 * image[first] + [0, 0, 127]).astype(np.uint8)
    assert np.array_equal(namespace["overlay"], expected) and (namespace["overlay"] != image).any()


def test_lang_sam_demo_notebook_runs(monkeypatch, sam_files, tiny_detector_dir, auto_dtype):
    """The notebook sets no dtype: it runs in what "auto" resolves to, and so does the comparison."""
    monkeypatch.chdir(NOTEBOOKS)
    monkeypatch.delenv("LANG_SAM_SAM_TYPE", raising=False)
    monkeypatch.setenv("LANG_SAM_SAM_CHECKPOINT", str(sam_files[0]))
    monkeypatch.setenv("LANG_SAM_DETECTOR", str(tiny_detector_dir))
    namespace = run_notebook("lang_sam_demo.ipynb")
    result = namespace["result"]
    assert namespace["model"].dtype == auto_dtype
    model = LangSAM(sam_checkpoint=sam_files[0], detector=tiny_detector_dir, device="cpu", dtype=auto_dtype)
    image = np.asarray(Image.open(NOTEBOOKS.parent / "assets" / "chelsea.jpg").convert("RGB"))
    expected = model.predict(image, "cat, sofa", box_threshold=0.3, text_threshold=0.25)
    assert result.num_detections > 0 and result.phrases == expected.phrases and np.array_equal(result.masks, expected.masks)
    assert np.allclose(result.boxes, expected.boxes) and np.allclose(result.logits, expected.logits)
    assert np.array_equal(namespace["drawing"], draw_image(image, expected))
    assert namespace["exported"] == expected.to_json() and len(namespace["detections"]) == expected.num_detections
    assert namespace["second"].phrases == model.predict(image, "cushion", box_threshold=0.3, text_threshold=0.25).phrases


def test_finetune_notebook_runs(monkeypatch, tmp_path):
    """notebooks/finetune.ipynb on a small dataset, one epoch: its run's outputs are those of the
    same config run here, and its held-out masks are those of the model it wrote."""
    from tests.conftest import TINY_A, TINY_SAMS, random_sam_state_dict
    from tests.training.conftest import write_ellipse_dataset

    coco, images = write_ellipse_dataset(tmp_path / "data")
    start = tmp_path / f"{TINY_A}.pth"
    torch.save(random_sam_state_dict(TINY_SAMS[TINY_A], seed=3), start)
    monkeypatch.chdir(NOTEBOOKS)
    for name, value in (("COCO", coco), ("IMAGES", images), ("OUT", tmp_path / "run"), ("EPOCHS", "1")):
        monkeypatch.setenv(f"LANG_SAM_FINETUNE_{name}", str(value))
    monkeypatch.setenv("LANG_SAM_SAM_CHECKPOINT", str(start))
    monkeypatch.setenv("LANG_SAM_CACHE", str(tmp_path / "cache"))
    namespace = run_notebook("finetune.ipynb")
    summary = namespace["summary"]
    assert summary["steps"] == 3 and summary["val_miou_best"] is not None
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["val_miou_best"] == summary["val_miou_best"]
    predictor = SamPredictor(build_sam(checkpoint=tmp_path / "run" / "model.pth"))
    predictor.set_image(np.asarray(Image.open(images / namespace["info"]["file_name"]).convert("RGB")))
    masks, _, _ = predictor.predict_torch(boxes=namespace["boxes"], multimask_output=False, prompts_in_image_pixels=True)
    assert len(namespace["boxes"]) == 3 and torch.equal(namespace["masks"], masks)
