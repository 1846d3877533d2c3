"""The model registry: official sizes, SAMs of your own found in the checkpoint folder, and
architectures read from a checkpoint's keys."""

from __future__ import annotations

import json

import pytest
import torch

from lang_sam import CheckpointError, InvalidOptionError, LangSAM
from lang_sam.errors import ModelLoadError
from lang_sam.registry import (
    DEFAULT_DETECTOR, DETECTORS, FAMILY_MODELS, IMAGE_SEGMENTER_KINDS, KINDS, SAM_MODELS, UNIVERSAL_MODELS, VIDEO_KINDS,
    ResolvedModel, SamArchitecture, check_sam_type, local_sam_checkpoints, names_of, resolve, sam_names,
)
from lang_sam.segmenter import build_sam
from lang_sam.segmenter.build import architecture_from_state_dict, architecture_of, build_sam_from_architecture
from tests.conftest import TINY_A, TINY_B, TINY_SAMS, random_sam_state_dict


@pytest.mark.parametrize("sam_type", list(SAM_MODELS))
def test_each_official_architecture_is_read_back_from_its_keys(sam_type, tmp_path):
    architecture = SAM_MODELS[sam_type].architecture
    with torch.device("meta"):
        sam = build_sam_from_architecture(architecture)
    assert architecture_from_state_dict(sam.state_dict(), tmp_path) == architecture
    assert architecture_of(sam) == architecture


def test_a_checkpoint_of_its_own_architecture_loads_without_a_size(sam_files):
    sam = build_sam(checkpoint=sam_files[0])
    assert architecture_of(sam) == TINY_SAMS[TINY_A]
    expected = torch.load(sam_files[0], weights_only=True)
    for name, tensor in sam.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)


def test_global_blocks_are_found_wherever_they_are(tmp_path):
    architecture = SamArchitecture(encoder_embed_dim=64, encoder_depth=3, encoder_num_heads=2, encoder_global_attn_indexes=(0, 2))
    path = tmp_path / "odd.pth"
    torch.save(random_sam_state_dict(architecture), path)
    assert architecture_of(build_sam(checkpoint=path)) == architecture


def test_an_official_size_refuses_a_checkpoint_of_another_architecture(sam_files):
    with pytest.raises(CheckpointError, match=r"own architecture \(encoder width 192, depth 2\).*Leave the SAM type unset"):
        build_sam("vit_b", checkpoint=sam_files[0])


def test_a_state_dict_that_is_not_sam_is_named_as_such(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"backbone.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a SAM checkpoint"):
        build_sam(checkpoint=path)
    with pytest.raises(InvalidOptionError, match="without its checkpoint"):
        build_sam("my_sam")


def test_names_are_the_official_sizes_then_the_folders_own_files(service_models, tmp_path, monkeypatch):
    checkpoints, _ = service_models
    assert sam_names(checkpoints) == ["vit_h", "vit_l", "vit_b", *FAMILY_MODELS, TINY_A, TINY_B]
    assert set(local_sam_checkpoints(checkpoints)) == {TINY_A, TINY_B}
    official_file = tmp_path / SAM_MODELS["vit_b"].file_name
    official_file.write_bytes(b"")
    assert local_sam_checkpoints(tmp_path) == {}, "an official file is its size, not a model of its own"
    monkeypatch.setenv("LANG_SAM_CHECKPOINTS", str(checkpoints))
    assert check_sam_type(TINY_B) == TINY_B
    monkeypatch.delenv("LANG_SAM_CHECKPOINTS")
    with pytest.raises(InvalidOptionError, match=rf"Unknown SAM type '{TINY_B}'; choose one of vit_h, vit_l, vit_b"):
        check_sam_type(TINY_B)
    with pytest.raises(InvalidOptionError, match="Unknown SAM type"):
        check_sam_type(["vit_b"])


def test_lang_sam_names_its_sam_by_the_folder_name_or_the_file(service_models, sam_files, monkeypatch):
    checkpoints, detector = service_models
    monkeypatch.setenv("LANG_SAM_CHECKPOINTS", str(checkpoints))
    by_name = LangSAM(TINY_B, detector=detector, device="cpu", dtype="float32")
    assert by_name.sam_type == TINY_B and architecture_of(by_name.sam) == TINY_SAMS[TINY_B]
    by_file = LangSAM(sam_checkpoint=sam_files[1], detector=detector, device="cpu", dtype="float32")
    assert by_file.sam_type == sam_files[1].stem


# resolve(): every name, file, folder and repo id to (name, family, kind, source)

def _folder(path, model_type: str):
    """A folder whose config.json names model_type, as save_pretrained writes it (resolve reads only that)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": model_type}))
    return path


def test_every_registry_name_resolves_to_its_entry():
    for table in (SAM_MODELS, DETECTORS, UNIVERSAL_MODELS):  # their adapters look the names up
        for name, entry in table.items():
            assert resolve(name) == ResolvedModel(name, entry.family, entry.kind, None)
    for name, entry in FAMILY_MODELS.items():
        assert resolve(name) == ResolvedModel(name, entry.family, entry.kind, entry.repo_id)
    assert [SAM_MODELS["vit_b"].kind, FAMILY_MODELS["sam-hq-vit-base"].kind, FAMILY_MODELS["sam3"].kind] == [
        "segmenter", "segmenter", "text_segmenter"]
    assert {DETECTORS[name].kind for name in DETECTORS} == {"detector"}
    assert {UNIVERSAL_MODELS[name].kind for name in UNIVERSAL_MODELS} == {"universal"}
    assert resolve("sam2.1_hiera_base_plus") == resolve("sam2.1-hiera-base-plus")  # lang-segment-anything's spelling


def test_a_name_resolves_as_the_kind_asked_for():
    assert resolve("sam2.1-hiera-tiny", VIDEO_KINDS).kind == "video_segmenter"
    assert resolve("sam3", VIDEO_KINDS).kind == "concept_tracker"
    assert resolve("sam3", IMAGE_SEGMENTER_KINDS).kind == "text_segmenter"
    assert resolve("sam2.1-hiera-tiny").kinds == ("segmenter", "video_segmenter")
    assert resolve("vit_b").kinds == ("segmenter",)
    with pytest.raises(ModelLoadError, match=r"vit_b is a segmenter \('sam' model\), not a video segmenter or concept "
                                             r"tracker; choose one of sam2.1-hiera-tiny, .*sam3\."):
        resolve("vit_b", VIDEO_KINDS)
    with pytest.raises(ModelLoadError, match=r"not a segmenter or text segmenter; choose one of vit_h"):
        resolve("owlv2-base-patch16", IMAGE_SEGMENTER_KINDS)


def test_files_resolve_as_meta_sam_or_idea_grounding_dino(sam_files):
    path = str(sam_files[0])
    assert resolve(sam_files[0]) == ResolvedModel(sam_files[0].name, "sam", "segmenter", path)
    assert resolve(path, ("detector",)) == ResolvedModel(sam_files[0].name, "grounding-dino", "detector", path)
    assert resolve("not/there/sam.pth").family == "sam", "a missing file is SAM v1's to report"
    assert resolve(path, VIDEO_KINDS) == ResolvedModel(sam_files[0].name, None, "video_segmenter", path)


@pytest.mark.parametrize(("model_type", "kinds", "kind"), [
    ("sam2", KINDS, "segmenter"), ("sam2", VIDEO_KINDS, "video_segmenter"), ("sam2_video", KINDS, "video_segmenter"),
    ("sam2_video", IMAGE_SEGMENTER_KINDS, "segmenter"), ("sam_hq", KINDS, "segmenter"), ("sam", KINDS, "segmenter"),
    ("sam3", KINDS, "text_segmenter"), ("sam3_video", KINDS, "concept_tracker"),
    ("sam3_video", IMAGE_SEGMENTER_KINDS, "text_segmenter"), ("owlv2", KINDS, "detector"),
    ("mm-grounding-dino", KINDS, "detector"), ("oneformer", KINDS, "universal"),
])
def test_a_save_pretrained_folder_resolves_by_its_model_type(model_type, kinds, kind, tmp_path):
    folder = _folder(tmp_path / "mine", model_type)
    assert resolve(folder, kinds) == ResolvedModel("mine", model_type, kind, str(folder))


def test_a_folder_of_no_known_model_is_left_to_the_adapter_of_the_kind_asked_for(tmp_path):
    bert = _folder(tmp_path / "bert", "bert")
    assert resolve(bert, ("detector",)) == ResolvedModel("bert", "bert", "detector", str(bert))
    (tmp_path / "empty").mkdir()
    assert resolve(tmp_path / "empty") == ResolvedModel("empty", None, "segmenter", str(tmp_path / "empty"))
    assert resolve(tmp_path / "missing", ("universal",)) == ResolvedModel("missing", None, "universal", str(tmp_path / "missing"))


def test_checkpoint_folder_names_resolve_to_their_files_and_folders(service_models, tmp_path):
    checkpoints, _ = service_models
    assert resolve(TINY_B, KINDS, checkpoints) == ResolvedModel(TINY_B, "sam", "segmenter", None)  # SAM v1 finds it by name
    own = tmp_path / "own"
    hq = _folder(own / "my-hq", "sam_hq")
    _folder(own / "my-sam3", "sam3_video")
    assert resolve("my-hq", KINDS, own) == ResolvedModel("my-hq", "sam_hq", "segmenter", str(hq))
    assert resolve("my-sam3", IMAGE_SEGMENTER_KINDS, own).kind == "text_segmenter"
    assert names_of(VIDEO_KINDS, own) == [*(n for n, e in FAMILY_MODELS.items() if e.family in ("sam2", "edgetam", "sam3")), "my-sam3"]


def test_repo_ids_resolve_by_the_registry_or_the_cached_config(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert resolve("facebook/sam2.1-hiera-small") == ResolvedModel("sam2.1-hiera-small", "sam2", "segmenter",
                                                                   "facebook/sam2.1-hiera-small")
    assert resolve(DEFAULT_DETECTOR) == ResolvedModel(DEFAULT_DETECTOR, "grounding-dino", "detector", DEFAULT_DETECTOR)
    assert resolve("someone/unknown", ("detector",)) == ResolvedModel("someone/unknown", None, "detector", "someone/unknown")
    snapshot = tmp_path / "models--someone--hq" / "snapshots" / "0123"
    _folder(snapshot, "sam_hq")
    (tmp_path / "models--someone--hq" / "refs").mkdir()
    (tmp_path / "models--someone--hq" / "refs" / "main").write_text("0123")
    assert resolve("someone/hq") == ResolvedModel("someone/hq", "sam_hq", "segmenter", "someone/hq")


def test_an_unknown_name_lists_the_names_of_the_kinds_asked_for():
    with pytest.raises(InvalidOptionError, match=r"Unknown SAM type 'nope'; choose one of vit_h, vit_l, vit_b, sam2.1"):
        resolve("nope")
    with pytest.raises(InvalidOptionError, match=rf"Unknown detector 'nope'; choose one of {', '.join(DETECTORS)}, or give"):
        resolve("nope", ("detector",))
    with pytest.raises(InvalidOptionError, match=r"Unknown video segmenter or concept tracker 'nope'; choose one of sam2.1"):
        resolve("nope", VIDEO_KINDS)
    with pytest.raises(InvalidOptionError, match="Unknown SAM type"):
        resolve(["vit_b"])
