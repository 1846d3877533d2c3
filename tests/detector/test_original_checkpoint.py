"""IDEA's original Grounding DINO checkpoints, proven equal to IDEA's own code (groundingdino-py).

Both models get the same random weights at the true Swin-T size: IDEA's model is built offline with
its text encoder pointing at a local random bert-base folder, saved in the original checkpoint
format, and loaded through lang-sam's public path.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from lang_sam import CheckpointError
from lang_sam.detector import GroundingDinoDetector
from lang_sam.detector.original_checkpoint import (
    convert_original_state_dict,
    grounding_dino_config,
    load_original_grounding_dino,
)
from tests.conftest import bert_vocab_path
from tests.detector.test_grounding_dino import ASSETS

groundingdino = pytest.importorskip(
    "groundingdino", reason="IDEA's reference: pip install --no-deps groundingdino-py==0.4.0 (README test command)"
)


def install_bert_warper_for_transformers_5() -> None:
    """groundingdino-py's BertModelWarper calls BertModel helpers removed in transformers 5
    (get_extended_attention_mask, get_head_mask). This stand-in keeps its submodules (so the
    checkpoint keys stay `bert.embeddings.*`, `bert.encoder.*`, `bert.pooler.*`) and runs the
    same BERT forward with the same 3-D sub-sentence mask, through BertModel itself."""
    import groundingdino.models.GroundingDINO.groundingdino as idea_model

    class BertModelWarper(torch.nn.Module):
        def __init__(self, bert_model):
            super().__init__()
            self.config = bert_model.config
            self.embeddings = bert_model.embeddings
            self.encoder = bert_model.encoder
            self.pooler = bert_model.pooler
            self._bert = [bert_model]  # held outside the module tree: no duplicate keys

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, **_):
            mask = attention_mask[:, None] if attention_mask.dim() == 3 else attention_mask
            return self._bert[0](
                input_ids=input_ids, attention_mask=mask.bool(), token_type_ids=token_type_ids, position_ids=position_ids
            )

    idea_model.BertModelWarper = BertModelWarper


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("bert-base-uncased")
    torch.manual_seed(0)
    BertModel(BertConfig()).save_pretrained(folder)
    BertTokenizer(vocab=str(bert_vocab_path()), do_lower_case=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def idea_swin_t(bert_folder, tmp_path_factory):
    """IDEA's Swin-T model with random weights, and the same weights as an original .pth file."""
    from pathlib import Path

    from groundingdino.models import build_model
    from groundingdino.util.slconfig import SLConfig

    install_bert_warper_for_transformers_5()
    args = SLConfig.fromfile(str(Path(groundingdino.__file__).parent / "config" / "GroundingDINO_SwinT_OGC.py"))
    args.text_encoder_type = str(bert_folder)
    args.device = "cpu"
    torch.manual_seed(1)
    model = build_model(args).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    checkpoint = tmp_path_factory.mktemp("weights") / "groundingdino_swint_ogc.pth"
    # As released: under "model", with DataParallel's "module." prefix and the buffers.
    torch.save({"model": {f"module.{key}": value for key, value in model.state_dict().items()}}, checkpoint)
    return model, checkpoint


class SharedProposals:
    """torch.topk for the 900 query proposals, recorded in lang-sam's forward and replayed in IDEA's.

    With random weights thousands of proposal scores lie within 1e-5 of each other, so float
    rounding noise of ~1e-6 (measured here: backbone, text encoder and encoder outputs agree to
    5e-6) can swap two proposals between query slots, and each slot has its own learned query.
    Sharing the choice makes the rest the same computation on both sides; IDEA's own choice is
    kept to check that it differs from ours only by such near-ties.
    """

    def __init__(self, num_queries: int) -> None:
        self.num_queries, self.ours, self.idea_own, self.gap = num_queries, None, None, None
        self._topk = torch.topk

    def record(self, scores, k, *args, **kwargs):
        result = self._topk(scores, k, *args, **kwargs)
        if k == self.num_queries:
            self.ours = result
        return result

    def replay(self, scores, k, *args, **kwargs):
        if k != self.num_queries:
            return self._topk(scores, k, *args, **kwargs)
        self.idea_own = self._topk(scores, k, *args, **kwargs).indices
        self.gap = (scores.gather(1, self.ours.indices) - self._topk(scores, k, *args, **kwargs).values).abs().max()
        return self.ours


def test_original_checkpoint_matches_idea_code(idea_swin_t, bert_folder, monkeypatch):
    from groundingdino.util.misc import NestedTensor

    reference, checkpoint = idea_swin_t
    model, processor = load_original_grounding_dino(checkpoint, tokenizer=bert_folder)
    image = Image.open(ASSETS / "astronaut.jpg").convert("RGB")
    caption = "person . flag . rocket ."
    inputs = processor(images=image, text=caption, return_tensors="pt")
    proposals = SharedProposals(model.config.num_queries)
    with torch.no_grad():
        monkeypatch.setattr(torch, "topk", proposals.record)
        ours = model(**inputs)
        monkeypatch.setattr(torch, "topk", proposals.replay)
        theirs = reference(NestedTensor(inputs["pixel_values"], ~inputs["pixel_mask"].bool()), captions=[caption])
    ours_chosen, idea_chosen = proposals.ours.indices[0], proposals.idea_own[0]
    assert len(set(ours_chosen.tolist()) & set(idea_chosen.tolist())) >= 0.99 * len(ours_chosen)
    assert (ours_chosen == idea_chosen).float().mean() >= 0.98, "the same proposals in the same query slots"
    assert proposals.gap < 1e-4, "where the choices differ, the scores are tied within float noise"
    text_length = inputs["input_ids"].shape[1]
    # Logits reach ~20 with random weights: float32 noise is relative there (measured 6e-6).
    torch.testing.assert_close(
        ours.logits[0, :, :text_length], theirs["pred_logits"][0, :, :text_length], atol=1e-4, rtol=1e-5
    )
    torch.testing.assert_close(ours.pred_boxes, theirs["pred_boxes"], atol=1e-4, rtol=0)


def test_detector_accepts_the_pth_file(idea_swin_t, bert_folder):
    _, checkpoint = idea_swin_t
    detector = GroundingDinoDetector(checkpoint, device="cpu", dtype="float32", tokenizer=bert_folder)
    image = Image.open(ASSETS / "coffee.jpg").convert("RGB")
    result = detector.detect([image], "cup, saucer", box_threshold=0.0, text_threshold=0.0)[0]
    assert len(result) == 900 and set(result.labels) <= {"cup", "saucer"}


def test_swin_b_checkpoint_keys_map_exactly(bert_folder):
    """IDEA's Swin-B model (groundingdino_swinb_cogcoor.pth's architecture) maps key for key."""
    from pathlib import Path

    from groundingdino.models import build_model
    from groundingdino.util.slconfig import SLConfig
    from transformers import GroundingDinoForObjectDetection

    from lang_sam.detector.original_checkpoint import detect_backbone

    install_bert_warper_for_transformers_5()
    args = SLConfig.fromfile(str(Path(groundingdino.__file__).parent / "config" / "GroundingDINO_SwinB_cfg.py"))
    args.text_encoder_type = str(bert_folder)
    args.device = "cpu"
    original = {f"module.{key}": value for key, value in build_model(args).state_dict().items()}
    assert detect_backbone(original) == "swin_b"
    with torch.device("meta"):
        target = GroundingDinoForObjectDetection(grounding_dino_config("swin_b")).state_dict()
    converted = convert_original_state_dict(original, set(target))
    assert any(".layers.2.blocks.17." in key for key in converted)
    assert {key: tuple(value.shape) for key, value in converted.items()} == {
        key: tuple(target[key].shape) for key in converted
    }


def test_missing_and_leftover_keys_are_reported(idea_swin_t):
    from transformers import GroundingDinoForObjectDetection

    reference, _ = idea_swin_t
    state_dict = dict(reference.state_dict())
    del state_dict["transformer.level_embed"]
    state_dict["transformer.extra.weight"] = torch.zeros(1)
    with torch.device("meta"):
        expected = set(GroundingDinoForObjectDetection(grounding_dino_config("swin_t")).state_dict())
    with pytest.raises(CheckpointError, match=r"1 model keys not filled \['model.level_embed'\].*transformer.extra.weight"):
        convert_original_state_dict(state_dict, expected)


def test_a_sam_checkpoint_is_not_taken_for_grounding_dino(tmp_path):
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16)}, path)
    with pytest.raises(CheckpointError, match="Not an original Grounding DINO checkpoint"):
        load_original_grounding_dino(path)


def test_idea_files_load_by_registry_name_through_the_hugging_face_cache(idea_swin_t, bert_folder, tmp_path, monkeypatch):
    """'groundingdino-swint-ogc' is IDEA's file in the ShilongLiu/GroundingDINO hub repo: found in
    the Hugging Face cache (laid out here by hand, offline), or a ModelLoadError naming it."""
    from huggingface_hub import constants

    from lang_sam import ModelLoadError

    _, checkpoint = idea_swin_t
    repo = tmp_path / "hub" / "models--ShilongLiu--GroundingDINO"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "groundingdino_swint_ogc.pth").symlink_to(checkpoint)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    by_name = GroundingDinoDetector("groundingdino-swint-ogc", device="cpu", dtype="float32", tokenizer=bert_folder)
    by_path = GroundingDinoDetector(checkpoint, device="cpu", dtype="float32", tokenizer=bert_folder)
    image = Image.open(ASSETS / "coffee.jpg").convert("RGB")
    first, second = (d.detect([image], "cup, saucer", box_threshold=0.0, text_threshold=0.0)[0] for d in (by_name, by_path))
    torch.testing.assert_close(first.xyxy, second.xyxy, atol=0, rtol=0)
    with pytest.raises(ModelLoadError, match="ShilongLiu/GroundingDINO/groundingdino_swinb_cogcoor.pth"):
        GroundingDinoDetector("groundingdino-swinb-cogcoor", device="cpu", tokenizer=bert_folder)
