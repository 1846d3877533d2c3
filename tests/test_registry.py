"""The model registry: official sizes, SAMs of your own found in the checkpoint folder, and
architectures read from a checkpoint's keys."""

from __future__ import annotations

import pytest
import torch

from lang_sam import CheckpointError, InvalidOptionError, LangSAM
from lang_sam.registry import (
    FAMILY_MODELS, SAM_MODELS, SamArchitecture, check_sam_type, local_sam_checkpoints, sam_names,
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
