"""Tiny random models of the transformers families, saved with save_pretrained as users keep
them: SAM 2.1, SAM-HQ and EdgeTAM segmenters, an OWLv2 detector (no downloads: a byte-level tokenizer)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lang_sam.families.loading import load_segmenter
from tests.conftest import byte_level_clip_tokenizer, tiny_grounding_dino


def tiny_sam2():
    from transformers import Sam2Config, Sam2Model
    from transformers.models.sam2.configuration_sam2 import (
        Sam2HieraDetConfig, Sam2MaskDecoderConfig, Sam2PromptEncoderConfig, Sam2VisionConfig,
    )

    backbone = Sam2HieraDetConfig(hidden_size=8, embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 1, 1],
                                  blocks_per_stage=[1, 1, 2, 1], global_attention_blocks=[3])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[64, 32, 16, 8], fpn_hidden_size=32)
    config = Sam2Config(vision_config=vision, prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=32),
                        mask_decoder_config=Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32))
    return Sam2Model(config).eval()


def tiny_sam_hq():
    from transformers import SamHQConfig, SamHQModel
    from transformers.models.sam_hq.configuration_sam_hq import (
        SamHQMaskDecoderConfig, SamHQPromptEncoderConfig, SamHQVisionConfig,
    )

    vision = SamHQVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, global_attn_indexes=[1], mlp_dim=64,
                               output_channels=32, num_pos_feats=16)
    config = SamHQConfig(vision_config=vision, prompt_encoder_config=SamHQPromptEncoderConfig(hidden_size=32),
                         mask_decoder_config=SamHQMaskDecoderConfig(hidden_size=32, mlp_dim=64, num_attention_heads=2,
                                                                    iou_head_hidden_dim=32, vit_dim=32))
    return SamHQModel(config).eval()


EDGETAM_IMAGE_SIZE = 256  # EdgeTAM's input (1024) shrunk; its backbone stays timm's repvit_m1 (5 M parameters)


def tiny_edgetam(config_changes: dict | None = None):
    """EdgeTamModel on timm's repvit_m1 (as EdgeTAM's released config names it) at a 256-pixel input;
    config_changes: vision_config entries to override (a wrong config)."""
    from transformers import EdgeTamConfig, EdgeTamModel, TimmWrapperConfig

    size = EDGETAM_IMAGE_SIZE
    backbone = TimmWrapperConfig(architecture="repvit_m1", do_pooling=False,
                                 model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]})
    vision = {"backbone_config": backbone.to_dict(), "backbone_feature_sizes": [[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
              **(config_changes or {})}
    return EdgeTamModel(EdgeTamConfig(vision_config=vision, prompt_encoder_config={"image_size": size}, image_size=size)).eval()


def save_tiny_segmenter(family: str, folder: Path, seed: int = 5) -> Path:
    """A tiny random SAM 2.1 ("sam2"), SAM-HQ ("sam_hq") or EdgeTAM ("edgetam") and its processor saved in folder."""
    from transformers import Sam2ImageProcessor, Sam2Processor, SamHQProcessor, SamImageProcessor

    torch.manual_seed(seed)
    if family == "sam2":
        tiny_sam2().save_pretrained(folder)
        Sam2Processor(Sam2ImageProcessor()).save_pretrained(folder)
    elif family == "edgetam":
        tiny_edgetam().save_pretrained(folder)
        Sam2Processor(Sam2ImageProcessor(size={"height": EDGETAM_IMAGE_SIZE, "width": EDGETAM_IMAGE_SIZE})).save_pretrained(folder)
    else:
        tiny_sam_hq().save_pretrained(folder)
        SamHQProcessor(SamImageProcessor()).save_pretrained(folder)
    return folder


OWL_IMAGE_SIZE = 96  # 6 x 6 patches of 16 pixels: 36 candidate boxes
OWL_TEXT_TOKENS = 16
LABELS = ["wall", "floor", "cup", "saucer", "spoon"]  # the tiny universal models' classes


def save_tiny_mask2former(folder: Path) -> Path:
    """A tiny random Mask2Former (Swin backbone) over LABELS and its image processor in folder;
    its class and mask heads drawn wide, so that its semantic map holds several classes."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor, SwinConfig

    backbone = SwinConfig(image_size=224, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                          window_size=7, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(
        backbone_config=backbone, hidden_dim=32, feature_size=32, mask_feature_size=32, encoder_layers=1, decoder_layers=2,
        num_attention_heads=2, dim_feedforward=64, encoder_feedforward_dim=64, num_queries=10, num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id={name: index for index, name in enumerate(LABELS)},
    )
    torch.manual_seed(1)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    with torch.no_grad():  # default inits give one class everywhere; these heads make the map vary
        for name, parameter in model.named_parameters():
            if "class_predictor" in name or "mask_embedder" in name or "queries" in name:
                parameter.normal_(0, 1.0)
    model.save_pretrained(folder)
    Mask2FormerImageProcessor(size={"shortest_edge": 128, "longest_edge": 256}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def owlv2_dir(tmp_path_factory):
    """A tiny random OWLv2 with a byte-level CLIP tokenizer (no downloads)."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    tokenizer = byte_level_clip_tokenizer(OWL_TEXT_TOKENS)
    vocab_size = len(tokenizer)
    config = Owlv2Config(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=vocab_size, max_position_embeddings=OWL_TEXT_TOKENS,
                         bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=OWL_IMAGE_SIZE, patch_size=16),
        projection_dim=32,
    )
    torch.manual_seed(3)
    model = Owlv2ForObjectDetection(config).eval()
    with torch.no_grad():  # default inits give near-equal scores; these make classes and boxes differ
        for name, parameter in model.named_parameters():
            if "class_head" in name or "box_head" in name:
                parameter.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("owlv2")
    model.save_pretrained(folder)
    image_processor = Owlv2ImageProcessor(size={"height": OWL_IMAGE_SIZE, "width": OWL_IMAGE_SIZE})
    Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def mm_gdino_dir(tmp_path_factory, bert_tokenizer):
    """A tiny random MM-Grounding-DINO and Grounding DINO's processor (bert-base-uncased's vocabulary)."""
    from transformers import GroundingDinoImageProcessor, GroundingDinoProcessor

    folder = tmp_path_factory.mktemp("mm-grounding-dino")
    tiny_grounding_dino(seed=4, model_type="mm-grounding-dino").save_pretrained(folder)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 240, "longest_edge": 400})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=bert_tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["sam2", "sam_hq", "edgetam"])
def family_dir(request, tmp_path_factory):
    """A tiny random SAM 2.1, SAM-HQ or EdgeTAM and its processor, saved as transformers saves them, in a
    checkpoint folder under the name tiny-FAMILY (tests of these families run once for each)."""
    folder = tmp_path_factory.mktemp(f"checkpoints-{request.param}") / f"tiny-{request.param}"
    save_tiny_segmenter(request.param, folder)
    return folder


@pytest.fixture(scope="module")
def direct(family_dir):
    """transformers' own model and processor for the folder, called as their docs show."""
    from transformers import AutoModel, AutoProcessor

    return AutoModel.from_pretrained(family_dir).eval(), AutoProcessor.from_pretrained(family_dir)


@pytest.fixture(scope="module")
def segmenter(family_dir):
    return load_segmenter(checkpoint=family_dir, device="cpu", dtype="float32")
