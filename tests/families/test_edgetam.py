"""EdgeTAM (transformers' EdgeTamModel: SAM 2's prompt encoder and mask decoder on a RepViT backbone)
in the registry, and its wrong folders as clear errors. Its parity with EdgeTamModel called directly
(boxes, points, masks, chunks, threads, bfloat16, LangSAM end to end, segment-everything) runs in
test_transformers_sam.py and test_everything.py, whose family_dir fixture includes EdgeTAM."""

from __future__ import annotations

import json

import pytest

from lang_sam.errors import ModelLoadError
from lang_sam.families.loading import load_segmenter
from lang_sam.families.transformers_sam import TransformersSegmenter
from tests.families.conftest import save_tiny_segmenter


def test_the_registry_names_edgetam_with_its_source_and_licence():
    from lang_sam.registry import FAMILY_MODELS, SEGMENTER, resolve, sam_names

    entry = FAMILY_MODELS["edgetam"]
    assert (entry.family, entry.repo_id, entry.licence, entry.kind) == ("edgetam", "yonigozlan/EdgeTAM-hf", "Apache-2.0", SEGMENTER)
    assert "edgetam" in sam_names() and resolve("edgetam").source == "yonigozlan/EdgeTAM-hf"


def test_a_folder_loads_as_edgetam_by_its_model_type(tmp_path):
    segmenter = load_segmenter(checkpoint=save_tiny_segmenter("edgetam", tmp_path / "edgetam"), device="cpu", dtype="float32")
    assert type(segmenter) is TransformersSegmenter and segmenter.family == "edgetam"
    assert type(segmenter.model).__name__ == "EdgeTamModel" and type(segmenter.processor).__name__ == "Sam2Processor"


def test_a_folder_whose_config_does_not_fit_its_weights_is_a_clear_error(tmp_path):
    """transformers' EdgeTamVisionConfig falls back to timm's resnet50 when the backbone's architecture
    is missing: a config.json written by hand that way builds a model the weights do not fit."""
    folder = save_tiny_segmenter("edgetam", tmp_path / "edgetam")
    config = json.loads((folder / "config.json").read_text())
    del config["vision_config"]["backbone_config"]["architecture"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="config.json does not describe its weights"):
        load_segmenter(checkpoint=folder, device="cpu", dtype="float32")


def test_a_folder_of_another_family_is_refused_naming_edgetam_among_those_it_runs(tmp_path):
    from transformers import Sam3Config

    Sam3Config().save_pretrained(tmp_path / "sam3")
    with pytest.raises(ModelLoadError, match="not one of sam2, sam2_video, sam_hq, edgetam"):
        TransformersSegmenter(tmp_path / "sam3", device="cpu")
