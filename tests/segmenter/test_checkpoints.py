"""Official checkpoint format: strict keys, safe loading, clear errors for wrong files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from segment_anything import sam_model_registry

from lang_sam import CheckpointError
from lang_sam.segmenter import SAM_MODELS, build_sam
from lang_sam.segmenter.build import build_sam_from_architecture
from tests.conftest import SMALL_ARCHITECTURE, random_sam_state_dict


@pytest.mark.parametrize("sam_type", ["vit_h", "vit_l", "vit_b"])
def test_parameter_names_and_shapes_equal_the_official_ones(sam_type):
    """The reference model's state dict is exactly what the official .pth files hold."""
    with torch.device("meta"):
        expected = sam_model_registry[sam_type]().state_dict()
        actual = build_sam_from_architecture(SAM_MODELS[sam_type].architecture).state_dict()
    assert actual.keys() == expected.keys()
    assert {k: v.shape for k, v in actual.items()} == {k: v.shape for k, v in expected.items()}


def test_official_file_names():
    assert {name: model.file_name for name, model in SAM_MODELS.items()} == {
        "vit_h": "sam_vit_h_4b8939.pth",
        "vit_l": "sam_vit_l_0b3195.pth",
        "vit_b": "sam_vit_b_01ec64.pth",
    }


@pytest.fixture(scope="module")
def vit_b_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "sam_vit_b_01ec64.pth"
    state_dict = random_sam_state_dict(SAM_MODELS["vit_b"].architecture, seed=11)
    torch.save(state_dict, path)
    return path, state_dict


def test_checkpoint_loads_every_tensor(vit_b_checkpoint):
    path, state_dict = vit_b_checkpoint
    sam = build_sam("vit_b", checkpoint=path)
    loaded = sam.state_dict()
    assert loaded.keys() == state_dict.keys()
    for name, tensor in state_dict.items():
        assert torch.equal(loaded[name], tensor), name
    assert not sam.training


def test_bfloat16_build_casts_encoder_and_decoder_but_not_prompt_positions(vit_b_checkpoint):
    path, state_dict = vit_b_checkpoint
    sam = build_sam("vit_b", checkpoint=path, dtype=torch.bfloat16)
    assert sam.image_encoder.pos_embed.dtype == torch.bfloat16
    assert sam.mask_decoder.iou_token.weight.dtype == torch.bfloat16
    gaussian = sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    assert gaussian.dtype == torch.float32
    assert torch.equal(gaussian, state_dict["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"])


def test_wrong_size_names_the_file_and_both_sizes(vit_b_checkpoint):
    path, _ = vit_b_checkpoint
    with pytest.raises(CheckpointError) as error:
        build_sam("vit_h", checkpoint=path)
    message = str(error.value)
    assert str(path) in message and "vit_b checkpoint" in message and "vit_h" in message
    assert "sam_vit_h_4b8939.pth" in message


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist.*sam_vit_b_01ec64.pth"):
        build_sam("vit_b", checkpoint=tmp_path / "nowhere.pth")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(CheckpointError, match="not a file"):
        build_sam("vit_b", checkpoint=tmp_path)


def test_truncated_file(tmp_path):
    whole = tmp_path / "whole.pth"
    torch.save(random_sam_state_dict(SMALL_ARCHITECTURE), whole)
    truncated = tmp_path / "sam_vit_b_01ec64.pth"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated.*download"):
        build_sam("vit_b", checkpoint=truncated)


def test_random_bytes(tmp_path):
    path = tmp_path / "sam_vit_b_01ec64.pth"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        build_sam("vit_b", checkpoint=path)


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1), "payload": _RunsCodeWhenUnpickled(str(marker))}, path)
    with pytest.raises(CheckpointError, match="Refused to load"):
        build_sam("vit_b", checkpoint=path)
    assert not marker.exists(), "unpickling ran code"


def test_not_a_sam_state_dict(tmp_path):
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a SAM checkpoint"):
        build_sam("vit_b", checkpoint=path)
    torch.save([torch.zeros(3)], path)
    with pytest.raises(CheckpointError, match="not a SAM state dict"):
        build_sam("vit_b", checkpoint=path)


def test_missing_and_unexpected_keys_are_listed(vit_b_checkpoint, tmp_path):
    _, state_dict = vit_b_checkpoint
    damaged = dict(state_dict)
    del damaged["mask_decoder.iou_token.weight"]
    damaged["mask_decoder.extra.weight"] = torch.zeros(1)
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(damaged, path)
    with pytest.raises(CheckpointError, match=r"1 missing keys \['mask_decoder.iou_token.weight'\].*1 unexpected"):
        build_sam("vit_b", checkpoint=path)


def test_unknown_sam_type_and_dtype():
    with pytest.raises(ValueError, match="vit_h, vit_l, vit_b"):
        build_sam("vit_x")
    with pytest.raises(ValueError, match="bfloat16"):
        build_sam("vit_b", dtype=torch.float16)


def test_weights_only_is_used_for_loading(tmp_path, monkeypatch):
    seen = {}
    original_load = torch.load

    def recording_load(*args, **kwargs):
        seen.update(kwargs)
        return original_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    path = tmp_path / "x.pth"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError):
        build_sam("vit_b", checkpoint=path)
    assert seen.get("weights_only") is True


def test_package_never_imports_the_reference():
    code = "import sys, lang_sam, lang_sam.segmenter; assert 'segment_anything' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

