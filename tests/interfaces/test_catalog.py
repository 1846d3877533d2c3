"""``lang-sam models``: the registry as a table, with real parameter counts and cache state read
from the files on this machine (a Hugging Face cache laid out as huggingface_hub lays it out)."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from lang_sam.interfaces.catalog import model_rows
from lang_sam.interfaces.cli import main
from lang_sam.registry import DETECTORS, FAMILY_MODELS, SAM_MODELS, UNIVERSAL_MODELS


def fake_hub_snapshot(cache, repo_id: str, tensors: dict[str, torch.Tensor]) -> None:
    """A repo in the hub cache's own layout: refs/main names the snapshot holding the files."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "sam2"}))
    save_file(tensors, snapshot / "model.safetensors")


def test_every_entry_is_listed_sam_v1_first_with_cache_state(tmp_path, monkeypatch, sam_files):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fake_hub_snapshot(cache, FAMILY_MODELS["sam2.1-hiera-tiny"].repo_id, {"a": torch.zeros(3, 5), "b": torch.zeros(7)})
    own = tmp_path / "checkpoints"
    own.mkdir()
    (own / "mine.pth").write_bytes(sam_files[0].read_bytes())
    rows = {row.name: row for row in model_rows(own)}
    names = list(rows)
    assert names[:3] == ["vit_h", "vit_l", "vit_b"]
    assert set(names) == {*SAM_MODELS, *FAMILY_MODELS, *DETECTORS, *UNIVERSAL_MODELS, "mine"}
    tiny = rows["sam2.1-hiera-tiny"]
    assert tiny.cached and tiny.parameters == 3 * 5 + 7, "counted from the cached weights, not the published figure"
    assert not rows["sam2.1-hiera-large"].cached and rows["sam2.1-hiera-large"].parameters == FAMILY_MODELS["sam2.1-hiera-large"].parameters
    assert rows["sam3"].gated and rows["sam3"].kind == "text segmenter" and not rows["vit_h"].cached
    assert rows["owlv2-base-patch16-ensemble"].kind == "detector" and rows["mine"].cached and rows["mine"].family == "own"


def test_the_cli_prints_a_table_or_json(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in listed][:3] == ["vit_h", "vit_l", "vit_b"]
    assert {"name", "family", "kind", "parameters", "licence", "gated", "cached"} <= set(listed[0])
    assert main(["models"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["name", "family", "kind", "parameters"] and any(line.startswith("sam3 ") for line in table)
