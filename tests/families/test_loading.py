"""The one loader, lang_sam.families.loading.load, once per kind: tiny random models saved as users
keep them, each loaded through it and checked to be the right adapter holding exactly the weights
that transformers' own from_pretrained (or torch.load, for Meta's SAM) reads from the same files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lang_sam.errors import InvalidOptionError, ModelLoadError
from lang_sam.families.loading import ADAPTERS, FALLBACK_ADAPTERS, adapter_of, load
from lang_sam.families.owlv2 import Owlv2Detector
from lang_sam.families.sam2_video import Sam2VideoSegmenter
from lang_sam.families.sam3 import Sam3TextSegmenter
from lang_sam.families.sam3_video import Sam3VideoTracker
from lang_sam.segmenter.adapter import SamV1Segmenter
from lang_sam.families.transformers_sam import TransformersSegmenter
from lang_sam.families.universal import UniversalSegmenter
from lang_sam.detector.grounding_dino import GroundingDinoDetector
from lang_sam.registry import DETECTORS, FAMILY_KINDS, IMAGE_SEGMENTER_KINDS, KINDS, VIDEO_KINDS, resolve
from tests.conftest import TINY_A
from tests.families.conftest import save_tiny_mask2former, save_tiny_segmenter


def assert_same_weights(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Every tensor of theirs, by name, equal in ours."""
    expected, loaded = theirs.state_dict(), ours.state_dict()
    assert expected.keys() == loaded.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0, msg=name)


@pytest.fixture(scope="module")
def sam3_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny SAM 3 image model and a tiny SAM 3 video model, each saved with save_pretrained."""
    from tests.conftest import byte_level_clip_tokenizer
    from tests.families.test_sam3 import IMAGE_SIZE, TEXT_TOKENS, random_sam3, sam3_processor, tiny_sam3_config
    from tests.video.test_sam3_video import save_tiny_sam3_video

    image = tmp_path_factory.mktemp("sam3")
    tokenizer = byte_level_clip_tokenizer(TEXT_TOKENS)
    random_sam3(tiny_sam3_config(len(tokenizer))).save_pretrained(image)
    sam3_processor(tokenizer, IMAGE_SIZE).save_pretrained(image)
    return image, save_tiny_sam3_video(tmp_path_factory.mktemp("sam3-video"))


def test_every_family_has_an_adapter_for_each_kind_it_loads_as():
    for family, kinds in FAMILY_KINDS.items():
        for kind in kinds:
            assert family in ADAPTERS[kind], (family, kind)
    assert set(ADAPTERS) == set(KINDS) and set(FALLBACK_ADAPTERS) == set(KINDS) - {"detector"}


def test_a_segmenter_loads_as_meta_sam_or_transformers(sam_files, tmp_path):
    from transformers import Sam2Model

    sam = load(sam_files[0], device="cpu", dtype="float32")
    assert type(sam) is SamV1Segmenter and sam.name == TINY_A
    assert_same_weights(sam.sam, _sam_v1(torch.load(sam_files[0], weights_only=True)))
    folder = save_tiny_segmenter("sam2", tmp_path / "sam2")
    sam2 = load(folder, device="cpu", dtype="float32", name="mine")
    assert type(sam2) is TransformersSegmenter and (sam2.name, sam2.family) == ("mine", "sam2")
    assert_same_weights(sam2.model, Sam2Model.from_pretrained(folder))


def test_a_text_segmenter_and_a_concept_tracker_load_from_sam3_folders(sam3_dirs):
    from transformers import Sam3Model, Sam3VideoModel

    image, video = sam3_dirs
    text = load(image, device="cpu", dtype="float32")
    assert type(text) is Sam3TextSegmenter and text.name == image.name
    assert_same_weights(text.model, Sam3Model.from_pretrained(image))
    tracker = load(video, device="cpu", dtype="float32")
    assert type(tracker) is Sam3VideoTracker
    assert_same_weights(tracker.model, Sam3VideoModel.from_pretrained(video))
    assert type(load(video, IMAGE_SEGMENTER_KINDS, device="cpu", dtype="float32")) is Sam3TextSegmenter
    with pytest.raises(ModelLoadError, match="image model alone"):  # a concept tracker's adapter, which says why not
        load(image, VIDEO_KINDS, device="cpu")


def test_a_video_segmenter_loads_from_a_sam2_video_folder(tmp_path):
    from transformers import Sam2VideoModel

    from tests.video.conftest import save_tiny_sam2_video

    tiny_video_dir = save_tiny_sam2_video(tmp_path / "sam2-video")
    video = load(tiny_video_dir, device="cpu", dtype="float32")
    assert type(video) is Sam2VideoSegmenter and video.name == tiny_video_dir.name
    assert_same_weights(video.model, Sam2VideoModel.from_pretrained(tiny_video_dir))
    assert type(load(tiny_video_dir, IMAGE_SEGMENTER_KINDS, device="cpu", dtype="float32")) is TransformersSegmenter


def test_detectors_load_by_their_model_type(owlv2_dir, tiny_detector_dir, tmp_path):
    from transformers import GroundingDinoForObjectDetection, Owlv2ForObjectDetection

    owl = load(owlv2_dir, device="cpu", dtype="float32")
    assert type(owl) is Owlv2Detector and owl.name == str(owlv2_dir)
    assert_same_weights(owl.model, Owlv2ForObjectDetection.from_pretrained(owlv2_dir))
    dino = load(tiny_detector_dir, ("detector",), device="cpu", dtype="float32")
    assert type(dino) is GroundingDinoDetector
    assert_same_weights(dino.model, GroundingDinoForObjectDetection.from_pretrained(tiny_detector_dir))
    with pytest.raises(InvalidOptionError, match=rf"Unknown detector 'nope'; choose one of {', '.join(DETECTORS)}"):
        load("nope", ("detector",))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelLoadError, match=r"holds a 'bert' model, which is not a detector.*grounding-dino-base"):
        adapter_of(resolve(tmp_path / "bert", ("detector",)))


def test_a_universal_model_loads_by_its_model_type(tmp_path):
    from transformers import Mask2FormerForUniversalSegmentation

    folder = save_tiny_mask2former(tmp_path / "m2f")
    universal = load(folder, device="cpu", dtype="float32")
    assert type(universal) is UniversalSegmenter and universal.name == str(folder)
    assert_same_weights(universal.model, Mask2FormerForUniversalSegmentation.from_pretrained(folder))


def test_bad_options_fail_before_anything_is_read():
    with pytest.raises(InvalidOptionError, match="device"):
        load("no/such/folder", device="tpu")


def _sam_v1(state_dict: dict[str, torch.Tensor]):
    """Meta's state dict in our own SAM of the architecture its keys say."""
    from lang_sam.segmenter.build import architecture_from_state_dict, build_sam_from_architecture

    sam = build_sam_from_architecture(architecture_from_state_dict(state_dict, Path("tiny.pth")))
    sam.load_state_dict(state_dict)
    return sam
