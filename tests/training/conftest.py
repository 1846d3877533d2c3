"""A small COCO dataset for fine-tuning tests: crops of real photos, each with ellipse-shaped
objects as polygons (a shape a box prompt alone does not give, so that training has something to
learn), and a random tiny SAM to start from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import TINY_A, TINY_SAMS, random_sam_state_dict
from tests.detector.test_grounding_dino import ASSETS

CROPS = [("chelsea.jpg", (0, 0, 320, 240)), ("chelsea.jpg", (120, 50, 451, 300)), ("coffee.jpg", (0, 0, 300, 260)),
         ("coffee.jpg", (200, 100, 600, 400)), ("astronaut.jpg", (0, 0, 256, 300)), ("astronaut.jpg", (200, 150, 512, 512))]


def ellipse_polygon(cx: float, cy: float, rx: float, ry: float, points: int = 32) -> list[float]:
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1).round(2).ravel().tolist()


def write_ellipse_dataset(folder: Path) -> tuple[Path, Path]:
    """folder/images/*.png and folder/instances.json: three ellipses in each of six photo crops."""
    images = folder / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    dataset = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "ellipse"}]}
    for image_id, (name, box) in enumerate(CROPS, start=1):
        crop = Image.open(ASSETS / name).convert("RGB").crop(box)
        file_name = f"{Path(name).stem}_{image_id}.png"
        crop.save(images / file_name)
        width, height = crop.size
        dataset["images"].append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for _ in range(3):
            rx, ry = rng.uniform(0.1, 0.25) * width, rng.uniform(0.1, 0.25) * height
            cx, cy = rng.uniform(rx, width - rx), rng.uniform(ry, height - ry)
            dataset["annotations"].append({
                "id": len(dataset["annotations"]) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "segmentation": [ellipse_polygon(cx, cy, rx, ry)], "bbox": [cx - rx, cy - ry, 2 * rx, 2 * ry],
                "area": float(np.pi * rx * ry),
            })
    coco = folder / "instances.json"
    coco.write_text(json.dumps(dataset))
    return coco, images


@pytest.fixture(scope="session")
def ellipse_dataset(tmp_path_factory) -> tuple[Path, Path]:
    return write_ellipse_dataset(tmp_path_factory.mktemp("ellipses"))


@pytest.fixture(scope="session")
def start_sam(tmp_path_factory) -> Path:
    """The random tiny SAM every fine-tuning test starts from."""
    path = tmp_path_factory.mktemp("finetune-start") / f"{TINY_A}.pth"
    torch.save(random_sam_state_dict(TINY_SAMS[TINY_A], seed=3), path)
    return path
