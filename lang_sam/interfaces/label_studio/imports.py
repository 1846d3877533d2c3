"""``lang-sam label --label-studio OUT.json``: a labeling run's detections as Label Studio tasks with
predictions (its import format), the regions made as the backend makes them, for people who import
files rather than run a backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lang_sam.errors import InvalidOptionError
from lang_sam.interfaces.label_studio.config import ProjectConfig
from lang_sam.interfaces.label_studio.results import prediction, regions
from lang_sam.io.files import write_atomically
from lang_sam.results import decode_rle
from lang_sam.vocabulary import Detections


def default_config(classes: list[str]) -> str:
    """A labeling config for classes: a brush per object, and clicks for the backend's interactive mode."""
    labels = "".join(f'<Label value="{_escaped(name)}"/>' for name in classes)
    return (f'<View><Image name="image" value="$image"/><BrushLabels name="label" toName="image">{labels}</BrushLabels>'
            f'<KeyPointLabels name="click" toName="image" smart="true">{labels}</KeyPointLabels></View>')


def check_classes(config: ProjectConfig, classes: list[str]) -> None:
    """Refuse, before any work, classes that none of the config's labels names (by name, hint,
    predicted_values)."""
    known = {name.lower() for name in config.classes}
    unknown = [name for name in classes if name.lower() not in known]
    if unknown:
        raise InvalidOptionError(f"--label-studio-config has no label for {', '.join(unknown)} (its labels' prompts: "
                                 f"{', '.join(config.classes)}); name the classes as the labels or their hint.")


def import_tasks(records: list[dict], config: ProjectConfig, image_prefix: str, model_version: str) -> list[dict]:
    """One task per image record: data[image key] = image_prefix + its file name, and a prediction
    of its detections in every control of the config, as the backend answers."""
    tasks = []
    for record in sorted(records, key=lambda r: r["file_name"]):
        detections = _detections(record)
        labels = config.labels_of(list(detections.labels))
        found = regions(detections, config.outputs, labels, detections.box_scores)
        tasks.append({"data": {config.image_key: image_prefix + record["file_name"]},
                      "predictions": [prediction(found, model_version)]})
    return tasks


def write_import_file(destination: Path, tasks: list[dict]) -> None:
    write_atomically(destination, lambda file: file.write(json.dumps(tasks).encode()))


def _detections(record: dict) -> Detections:
    """The Detections of one labeling record (COCO RLE masks, xyxy boxes, scores, class names)."""
    found = record["detections"]
    size = (record["image"]["height"], record["image"]["width"])
    names = list(dict.fromkeys(detection["label"] for detection in found))
    return Detections(
        xyxy=np.array([detection["box"] for detection in found], np.float32).reshape(-1, 4), image_size=size,
        masks=np.array([decode_rle(detection["mask"]) for detection in found], bool).reshape(-1, *size),
        box_scores=np.array([detection["score"] for detection in found], np.float32),
        mask_scores=np.array([detection["mask_score"] for detection in found], np.float32),
        class_ids=np.array([names.index(detection["label"]) for detection in found], np.int64), classes=tuple(names))


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
