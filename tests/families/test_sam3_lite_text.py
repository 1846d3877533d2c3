"""SAM 3 LiteText (transformers' Sam3LiteTextModel: SAM 3 with a distilled MobileCLIP text encoder)
through the public path, on a tiny random model saved with save_pretrained: its text and exemplar
answers equal Sam3LiteTextModel + Sam3Processor called directly (float32); it sits in the registry
as sam3-lite-text, wherever sam3 does; clicks on it are refused, saying it has no tracker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lang_sam.errors import InvalidPromptError
from lang_sam.families.loading import load_segmenter
from lang_sam.families.sam3 import Sam3LiteTextSegmenter
from lang_sam.vocabulary import Exemplars
from tests.families.test_sam3 import (  # noqa: F401 - images and threshold are fixtures (threshold reads this module's direct)
    CLASSES, TEXT_TOKENS, assert_same, images, reference, save_tiny_sam3, threshold, tiny_sam3_config,
)
from tests.families.test_sam3_exemplars import COUNTER, EXAMPLE, assert_equal_to_direct, direct_instances, median_score


def tiny_sam3_lite_text_config(vocab_size: int):
    """The tiny SAM 3 of test_sam3.py with a 3-layer MobileCLIP text encoder (RepMixer blocks first and last)."""
    from transformers import Sam3LiteTextConfig

    parts = tiny_sam3_config(vocab_size).to_dict()
    text = {"vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "projection_dim": 32, "num_hidden_layers": 3,
            "num_attention_heads": 2, "max_position_embeddings": TEXT_TOKENS, "repmixer_kernel_size": 3}
    return Sam3LiteTextConfig(text_config=text, **{name: parts[name] for name in (
        "vision_config", "geometry_encoder_config", "detr_encoder_config", "detr_decoder_config", "mask_decoder_config")})


@pytest.fixture(scope="module")
def lite_dir(tmp_path_factory) -> Path:
    return save_tiny_sam3(tmp_path_factory.mktemp("sam3-lite-text"), tiny_sam3_lite_text_config, "Sam3LiteTextModel")


@pytest.fixture(scope="module")
def direct(lite_dir):
    """Sam3LiteTextModel and Sam3Processor as transformers' documentation loads them."""
    from transformers import Sam3LiteTextModel, Sam3Processor

    return Sam3LiteTextModel.from_pretrained(lite_dir).eval(), Sam3Processor.from_pretrained(lite_dir)


@pytest.fixture(scope="module")
def segmenter(lite_dir):
    """Through the public loader, as LangSAM and the CLI load it."""
    loaded = load_segmenter(checkpoint=lite_dir, device="cpu", dtype="float32")
    assert type(loaded) is Sam3LiteTextSegmenter
    return loaded


def test_text_equals_sam3_lite_text_model_called_directly(segmenter, direct, images, threshold):
    assert segmenter.family == "sam3_lite_text"
    assert segmenter.parameter_count() == sum(p.numel() for p in direct[0].parameters())
    results = segmenter.segment_text(images, CLASSES, box_threshold=threshold)
    assert sum(len(result) for result in results) > 0
    for result, image, classes in zip(results, images, CLASSES):
        assert_same(result, reference(direct, image, classes, threshold), classes)


def test_exemplars_equal_sam3_lite_text_model_called_directly(segmenter, direct, images):
    image, boxes, labels = images[0], [EXAMPLE, COUNTER], [1, 0]
    limit = median_score(direct, image, "cup", boxes, labels)
    found = segmenter.segment_text([image], [["cup"]], box_threshold=limit, exemplars=[Exemplars.of([EXAMPLE], [COUNTER])])[0]
    assert_equal_to_direct(found, direct_instances(direct, image, "cup", boxes, labels, limit))


def test_langsam_runs_it_with_no_detector_and_refuses_clicks_saying_it_has_no_tracker(lite_dir, segmenter, images, tmp_path):
    from lang_sam import LangSAM

    model = LangSAM(sam_checkpoint=lite_dir, detector=tmp_path / "never-loaded", device="cpu", dtype="float32")
    result = model.predict(images[0], "cup, saucer, spoon", box_threshold=0.0)
    expected = segmenter.segment_text([images[0]], [CLASSES[0]], box_threshold=0.0)[0]
    assert result.num_detections == len(expected) > 0 and np.array_equal(result.masks, expected.masks)
    assert "+" not in model.describe(), "no detector in what runs"
    with pytest.raises(InvalidPromptError, match="segments text prompts \\(no tracker in its checkpoints"):
        model.predict(images[0], points=[[10, 10]])


def test_the_registry_names_it_wherever_sam3_is_named():
    from lang_sam.registry import FAMILY_MODELS, TEXT_SEGMENTER, resolve, sam_names

    entry = FAMILY_MODELS["sam3-lite-text"]
    assert (entry.family, entry.repo_id, entry.kind) == ("sam3_lite_text", "vil-uob/sam3-litetext-s0", TEXT_SEGMENTER)
    assert "sam3-lite-text" in sam_names() and entry.licence.startswith("SAM License")
    resolved = resolve("sam3-lite-text")
    assert (resolved.kind, resolved.source) == (TEXT_SEGMENTER, "vil-uob/sam3-litetext-s0")


def test_a_sam3_folder_is_not_sam3_lite_text(direct, tmp_path):
    from lang_sam.errors import ModelLoadError
    from transformers import Sam3Config

    Sam3Config().save_pretrained(tmp_path / "sam3")
    with pytest.raises(ModelLoadError, match="is a sam3 model, not SAM 3 LiteText"):
        Sam3LiteTextSegmenter(tmp_path / "sam3", device="cpu")
