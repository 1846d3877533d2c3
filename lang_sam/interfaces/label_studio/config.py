"""A Label Studio project's labeling config, read with label-studio-sdk's LabelInterface: the image
the tasks hold, the controls lang-sam fills, the controls that take the annotator's clicks and
boxes, and the text prompt of each of the project's labels."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lang_sam.errors import InvalidOptionError

# What pre-annotation fills, and what an interactive answer fills (the first of these present).
OUTPUT_TAGS = ("BrushLabels", "PolygonLabels", "RectangleLabels")
MASK_TAGS = ("BrushLabels", "PolygonLabels")
# The controls whose regions are the annotator's prompts in interactive mode.
PROMPT_TAGS = ("KeyPointLabels", "RectangleLabels")
# The label that marks a RectangleLabels box as a counter-example (SAM 3's negative exemplar): a
# label of its own, in any case, which is never a text prompt and never an answer's label.
NEGATIVE_LABEL = "negative"


def is_negative(label: str) -> bool:
    """Whether label is the counter-example label ("Negative", in any case)."""
    return label.strip().lower() == NEGATIVE_LABEL


class LabelConfigError(InvalidOptionError):
    """A labeling config lang-sam cannot fill: no image, no control it writes, unreadable XML."""


@dataclass(frozen=True)
class Control:
    """One control tag of the config: tag ("BrushLabels", ...), name (a result's from_name), to_name
    (the Image tag it labels) and its labels, in the config's order."""

    tag: str
    name: str
    to_name: str
    labels: tuple[str, ...]

    @property
    def result_type(self) -> str:
        """The ``type`` of the results of this control ("brushlabels", ...)."""
        return self.tag.lower()


@dataclass(frozen=True)
class ProjectConfig:
    """What lang-sam reads from a labeling config.

    image_key: the task data key of the Image tag (``value="$image"`` -> "image"); outputs: the
    controls on that image that pre-annotation fills; prompt_controls: the names of the
    KeyPointLabels and RectangleLabels controls on it, whose regions are interactive prompts; prompts: each label's text prompts (the
    detector's classes), from the mapping option, else the label's ``hint``, else its
    ``predicted_values`` (comma-separated), else the label itself; the counter-example label
    ("Negative") has none and is not one of labels.
    """

    image_key: str
    outputs: tuple[Control, ...]
    prompts: Mapping[str, tuple[str, ...]]
    prompt_controls: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, xml: object, label_prompts: Mapping[str, str | list[str]] | None = None) -> ProjectConfig:
        """The config of xml (a project's label_config), or the LabelConfigError that says what it lacks."""
        from label_studio_sdk.label_interface import LabelInterface

        if not isinstance(xml, str) or not xml.strip():
            raise LabelConfigError("The request holds no labeling config (label_config); connect the backend to a project.")
        try:
            interface = LabelInterface(xml)
        except Exception as error:  # noqa: BLE001 - the SDK raises lxml's, its own and KeyErrors for bad XML
            raise LabelConfigError(f"The labeling config could not be read ({type(error).__name__}: {error}).") from None
        images = {tag.name: tag.value_name for tag in interface.objects if tag.tag == "Image"}
        controls = [Control(control.tag, control.name, (control.to_name or [""])[0], tuple(control.labels))
                    for control in interface.controls if control.tag in OUTPUT_TAGS + PROMPT_TAGS]
        outputs = tuple(control for control in controls if control.tag in OUTPUT_TAGS and control.to_name in images)
        if not outputs:
            raise LabelConfigError(
                "lang-sam fills BrushLabels, PolygonLabels or RectangleLabels on an Image tag; this labeling config has "
                f"none (its controls: {', '.join(c.tag for c in interface.controls) or 'none'}). Add one, e.g. "
                '<BrushLabels name="label" toName="image"><Label value="car"/></BrushLabels>.'
            )
        hints: dict[str, Mapping[str, str]] = {}  # the first of a label's tags that gives words
        for control in interface.controls:
            for label, tag in control.labels_attrs.items() if control.tag in OUTPUT_TAGS else ():
                if label not in hints and ({"hint", "predicted_values"} & set(tag.attr)):
                    hints[label] = tag.attr
        labels = tuple(dict.fromkeys(label for control in outputs for label in control.labels if not is_negative(label)))
        prompts = {label: _prompts_of(label, hints.get(label), (label_prompts or {}).get(label)) for label in labels}
        image = outputs[0].to_name
        return cls(images[image], tuple(c for c in outputs if c.to_name == image), prompts,
                   frozenset(c.name for c in controls if c.tag in PROMPT_TAGS and c.to_name == image))

    @property
    def labels(self) -> tuple[str, ...]:
        """The project's labels of the controls lang-sam fills, in the config's order."""
        return tuple(self.prompts)

    @property
    def classes(self) -> list[str]:
        """The detector's classes: every label's prompts, each once."""
        return list(dict.fromkeys(prompt for prompts in self.prompts.values() for prompt in prompts))

    def labels_of(self, names: Sequence[str]) -> list[str]:
        """The project label each class name (one of classes, in any case: detectors and
        ``--classes`` lower it) stands for: the first label whose prompts hold it."""
        owner = {prompt.lower(): label for label, prompts in reversed(self.prompts.items()) for prompt in prompts}
        return [owner[name.lower()] for name in names]

    @property
    def mask_output(self) -> Control:
        """Where an interactive answer goes: the first BrushLabels control, else the first
        PolygonLabels (a RectangleLabels-only project gets the mask's box)."""
        for tag in (*MASK_TAGS, "RectangleLabels"):
            found = [control for control in self.outputs if control.tag == tag]
            if found:
                return found[0]
        raise AssertionError("parse keeps only configs with an output")


def _prompts_of(label: str, attributes: Mapping[str, str] | None, mapped: str | list[str] | None) -> tuple[str, ...]:
    """A label's text prompts: the mapping's, else its hint, else its predicted_values, else itself."""
    if mapped is not None:
        found = [mapped] if isinstance(mapped, str) else list(mapped)
    elif attributes and attributes.get("hint"):
        found = [attributes["hint"]]
    elif attributes and attributes.get("predicted_values"):
        found = attributes["predicted_values"].split(",")
    else:
        found = [label]
    prompts = tuple(dict.fromkeys(prompt.strip() for prompt in found if prompt.strip()))
    if not prompts:
        raise LabelConfigError(f"Label {label!r} has an empty text prompt; give it words (hint, predicted_values or --label-prompts).")
    return prompts


def read_label_prompts(text: str | None) -> dict[str, str | list[str]]:
    """The mapping option: label -> prompt (or a list of prompts), as JSON text or a .json file."""
    if not text:
        return {}
    source = Path(text).read_text() if text.strip().endswith(".json") and Path(text).is_file() else text
    try:
        mapping = json.loads(source)
    except ValueError:
        mapping = None
    if not isinstance(mapping, dict) or not all(
            isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
            for value in mapping.values()):
        raise InvalidOptionError(
            'The label prompts are a JSON object of label -> prompt or list of prompts, e.g. {"Car": "car", '
            f'"Person": ["person", "pedestrian"]}} (or a .json file holding one); got {text[:80]!r}.'
        )
    return mapping
