"""What the backend answers, apart from HTTP: /setup's model version, /predict's pre-annotations
(the project's label names as the text prompt, every region one of its labels) and interactive
masks (the annotator's clicks and boxes against the image's cached embedding; with SAM 3, boxes
as exemplars of their label's concept)."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lang_sam.errors import InvalidOptionError, InvalidPromptError, LangSAMError
from lang_sam.interfaces.label_studio.config import NEGATIVE_LABEL, ProjectConfig, is_negative
from lang_sam.interfaces.label_studio.files import LabelStudioAccess, load_task_image
from lang_sam.interfaces.label_studio.results import Clicks, prediction, read_context, regions
from lang_sam.pipeline import LangSAM
from lang_sam.registry import DEFAULT_SAM, DETECTOR, IMAGE_SEGMENTER_KINDS, TEXT_SEGMENTER, ResolvedModel, resolve
from lang_sam.settings import Settings
from lang_sam.vocabulary import Thresholds

LOGGER = logging.getLogger("lang_sam.label_studio")
WEIGHTS_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


@dataclass
class LabelStudioBackend:
    """One pipeline serving Label Studio projects.

    thresholds: the detector's; label_prompts: label -> prompt(s), over the config's hints;
    access: the Label Studio URL and token files are read with (None: those /setup sends);
    model_version: what predictions are tagged with (model_version() of the pipeline's settings).
    """

    pipeline: LangSAM
    model_version: str
    thresholds: Thresholds = field(default_factory=Thresholds)
    label_prompts: Mapping[str, str | list[str]] = field(default_factory=dict)
    access: LabelStudioAccess | None = None
    _project_access: dict[str, LabelStudioAccess] = field(default_factory=dict, repr=False)
    _predicting: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def setup(self, body: dict) -> dict:
        """/setup: the config is checked (a LabelConfigError says what it lacks), the project's
        Label Studio URL and token kept for its files, the model version answered."""
        ProjectConfig.parse(body.get("schema"), self.label_prompts)
        if body.get("hostname") and body.get("access_token"):
            self._project_access[_project_id(body)] = LabelStudioAccess(str(body["hostname"]), str(body["access_token"]))
        return {"model_version": self.model_version}

    def predict(self, body: dict) -> dict:
        """/predict: {"results": [one prediction per task]} (a task whose image fails gets
        {"error": why} in its place, which Label Studio logs and skips), or with an interactive
        context, {"results": [the mask of the annotator's clicks and boxes]}."""
        config = ProjectConfig.parse(body.get("label_config"), self.label_prompts)
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise InvalidOptionError("The request holds no tasks: Label Studio sends {\"tasks\": [...], \"label_config\": ...}.")
        access = self.access or self._project_access.get(_project_id(body))
        context = (body.get("params") or {}).get("context")
        if isinstance(context, dict) and context.get("result"):
            return {"results": [self._interactive(tasks[0], config, context, access)]}
        return {"results": [self._answer_or_error(task, config, access) for task in tasks]}

    def _answer_or_error(self, task: dict, config: ProjectConfig, access: LabelStudioAccess | None) -> dict:
        try:
            return self._pre_annotate(task, config, access)
        except LangSAMError as error:
            LOGGER.warning("lang-sam: %s", error)
            return {"error": str(error)}

    def _pre_annotate(self, task: dict, config: ProjectConfig, access: LabelStudioAccess | None) -> dict:
        image = load_task_image(task, config.image_key, access)
        with self._predicting:
            result = self.pipeline.predict(image, classes=config.classes, box_threshold=self.thresholds.box,
                                           text_threshold=self.thresholds.text, max_detections=self.thresholds.max_detections,
                                           nms_iou_threshold=self.thresholds.nms_iou)
        detections = result.detections
        labels = config.labels_of([config.classes[int(index)] for index in detections.class_ids])
        return prediction(regions(detections, config.outputs, labels, detections.box_scores), self.model_version)

    def _interactive(self, task: dict, config: ProjectConfig, context: dict, access: LabelStudioAccess | None) -> dict:
        """The mask of the clicks and boxes, as the project's mask control (brush, else polygon)
        with the label the annotator chose (else that control's first); with SAM 3, boxes are
        exemplars instead (see _more_like_this)."""
        image = load_task_image(task, config.image_key, access)
        clicks = read_context(context, config.prompt_controls, image.shape[:2])
        if self.pipeline.segments_text and clicks.boxes is not None:
            return self._more_like_this(image, config, clicks)
        if clicks.negative_boxes.any():
            raise InvalidPromptError(f"A box labelled {NEGATIVE_LABEL!r} is a counter-example, which only SAM 3 takes "
                                     "(--sam-type sam3); with this model a box is the object to segment: give it the object's label.")
        output = config.mask_output
        label = clicks.label if clicks.label in output.labels else output.labels[0]
        with self._predicting:  # the image's embedding is cached: the first click encodes, later ones decode
            result = self.pipeline.predict(image, points=clicks.points, point_labels=clicks.point_labels,
                                           boxes=clicks.boxes, label=label)
        detections = result.detections
        return prediction(regions(detections, [output], [label] * len(detections), detections.mask_scores), self.model_version)

    def _more_like_this(self, image: np.ndarray, config: ProjectConfig, clicks: Clicks) -> dict:
        """SAM 3's answer to exemplar boxes: every instance of the boxes' label's concept (its first
        prompt as text, the boxes as exemplars, a box labelled "Negative" a counter-example), as
        the regions of each output control holding that label, scored by SAM 3."""
        if clicks.points is not None:
            raise InvalidPromptError("With SAM 3, RectangleLabels boxes are exemplars (find more like this) and KeyPointLabels "
                                     "clicks are one object: send one or the other in a request (delete the other regions).")
        label = _concept_label(clicks, config)
        negative = clicks.negative_boxes
        with self._predicting:
            result = self.pipeline.predict(image, config.prompts[label][0], exemplars=clicks.boxes[~negative],
                                           negative_exemplars=clicks.boxes[negative], box_threshold=self.thresholds.box,
                                           max_detections=self.thresholds.max_detections,
                                           nms_iou_threshold=self.thresholds.nms_iou)
        detections = result.detections
        return prediction(regions(detections, config.outputs, [label] * len(detections), detections.box_scores), self.model_version)


def _concept_label(clicks: Clicks, config: ProjectConfig) -> str:
    """The one project label the exemplar boxes show (the counter-example label aside), or an
    InvalidPromptError saying what the boxes lack."""
    chosen = {label for labels in clicks.box_labels for label in labels if not is_negative(label)}
    if len(chosen) != 1:
        raise InvalidPromptError(
            f"SAM 3's exemplar boxes show one label's concept; these boxes carry {sorted(chosen) or 'none'}. Draw at least "
            f"one box with one of {list(config.labels)} (boxes labelled {NEGATIVE_LABEL!r} are counter-examples of it).")
    [label] = chosen
    if label not in config.prompts:
        raise InvalidPromptError(f"The box label {label!r} is not one of the project's labels {list(config.labels)}.")
    return label


def _project_id(body: dict) -> str:
    """The project id of Label Studio's "ID.TIMESTAMP" project field."""
    return str(body.get("project", "")).split(".", 1)[0]


def model_version(settings: Settings) -> str:
    """"lang-sam SEGMENTER+DETECTOR HASH" of the models settings name (SAM 3 alone: no detector): their
    names and the first 12 hex digits of a SHA256 over their weights files found on this machine, so
    that Label Studio tells apart predictions of other weights under the same names. Loads no model."""
    segmenter = _resolved(settings.sam_checkpoint or settings.sam_type or DEFAULT_SAM, IMAGE_SEGMENTER_KINDS, settings)
    models = [(settings.sam_type or segmenter.name, segmenter.source or segmenter.name)]
    if segmenter.kind != TEXT_SEGMENTER:
        detector = _resolved(settings.detector, (DETECTOR,), settings)
        models.append((detector.name, detector.source or detector.name))
    digest = hashlib.sha256()
    for path in (path for _, source in models for path in _weights_files(source, settings)):
        digest.update(path.name.encode() + _file_digest(path))
    return f"lang-sam {'+'.join(name for name, _ in models)} {digest.hexdigest()[:12]}"


def _resolved(name: str, kinds: tuple[str, ...], settings: Settings) -> ResolvedModel:
    return resolve(name, kinds, settings.checkpoint_dir)


def _weights_files(source: str | None, settings: Settings) -> list[Path]:
    """The weights files of a model source: the file, a folder's weights, the checkpoint folder's
    NAME.pth or NAME folder, or a repo id's cached snapshot (nothing is downloaded)."""
    if source is None:
        return []
    from lang_sam.registry import local_sam_checkpoints

    path = Path(source)
    if not path.exists():
        path = (local_sam_checkpoints(settings.checkpoint_dir).get(source) or _official_sam(source, settings)
                or _cached_snapshot(source) or path)
    if path.is_file():
        return [path]
    return sorted(file for file in path.rglob("*") if file.suffix in WEIGHTS_SUFFIXES) if path.is_dir() else []


def _official_sam(name: str, settings: Settings) -> Path | None:
    from lang_sam.io.weights import find_sam_checkpoint

    try:
        return find_sam_checkpoint(name, download=False, checkpoint_dir=settings.checkpoint_dir)
    except (LangSAMError, KeyError):  # not a SAM v1 size, or not on this machine
        return None


def _cached_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not a repo id, or not cached: nothing to hash
        return None


def _file_digest(path: Path) -> bytes:
    from lang_sam.io.weights import file_sha256

    return bytes.fromhex(file_sha256(path))
