"""The README's model x mode table: exactly what lang_sam.families.table generates from the
adapters' capabilities, and those capabilities agree with the interfaces each adapter implements."""

from __future__ import annotations

from pathlib import Path

import pytest

from lang_sam.vocabulary.capabilities import Capabilities
from lang_sam.families.loading import ADAPTERS
from lang_sam.segmenter.adapter import SamV1Segmenter
from lang_sam.families.table import MODES, cell, model_table, readme_table, with_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_is_the_generated_one():
    assert readme_table(README.read_text()) == model_table(), "run: python scripts/model_table.py --write"


def test_a_table_written_in_reads_back_and_an_edited_cell_is_seen():
    readme = README.read_text()
    assert readme_table(with_table(readme)) == model_table()
    edited = readme.replace("| no: lang-sam export-onnx writes", "| yes | no: lang-sam export-onnx writes", 1)
    assert readme_table(edited) != model_table()


def test_the_capabilities_agree_with_the_interfaces_each_adapter_implements():
    adapters = {adapter for by_family in ADAPTERS.values() for adapter in by_family.values()
                if issubclass(adapter, Capabilities)}
    assert len(adapters) == 8  # every adapter but Grounding DINO's (lang_sam.detector: a detector runs no mode alone)
    for adapter in adapters:
        promptable = callable(getattr(adapter, "decode", None))
        assert adapter.takes_clicks_and_boxes == promptable, adapter
        # a promptable segmenter segments a detector's boxes, unless it finds the text's objects itself (SAM 3)
        assert adapter.text_via_detector == (promptable and not adapter.takes_text), adapter
        text = callable(getattr(adapter, "segment_text", None)) or callable(getattr(adapter, "track_concepts", None))
        assert adapter.takes_text == text, adapter
        video = callable(getattr(adapter, "start", None)) or callable(getattr(adapter, "track_concepts", None))
        assert adapter.tracks_video == video, adapter
        assert adapter.exports_onnx == adapter.fine_tunes == (adapter is SamV1Segmenter), adapter


def test_every_family_row_says_why_for_each_mode_it_cannot_run():
    for family in ("sam", "sam2", "sam_hq", "sam3"):
        for _, capability in MODES:
            answer = cell(family, capability)
            assert answer == "yes" or (answer.startswith("no: ") and len(answer) > 8)
    assert cell("sam2", "tracks_video") == "yes" and cell("sam_hq", "tracks_video").startswith("no: ")


def test_a_capability_with_no_reason_is_refused(monkeypatch):
    monkeypatch.setattr(SamV1Segmenter, "why_not", {})
    with pytest.raises(ValueError, match="SamV1Segmenter.why_not says nothing of takes_text"):
        model_table()
