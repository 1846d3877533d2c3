"""IDEA's original Grounding DINO checkpoints, loaded into transformers' model.

`groundingdino_swint_ogc.pth` and `groundingdino_swinb_cogcoor.pth` (what lang-segment-anything v1
and Grounded-SAM users have) hold IDEA's parameter names. Their keys are renamed onto
`GroundingDinoForObjectDetection` at load time; fused projections (Swin's qkv, the attention
in_proj of nn.MultiheadAttention) are split. Every model key must be filled and every checkpoint
key used, apart from the few listed below that the detector never reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch

from lang_sam.errors import CheckpointError, ModelLoadError
from lang_sam.io.weights import read_weights_file

ORIGINAL_CHECKPOINT_FILES = {"swin_t": "groundingdino_swint_ogc.pth", "swin_b": "groundingdino_swinb_cogcoor.pth"}
ORIGINAL_CHECKPOINT_REPO = "ShilongLiu/GroundingDINO"
DEFAULT_TOKENIZER = "bert-base-uncased"

# Swin settings of IDEA's two released models: (embed_dim, depths, num_heads, window_size, image_size).
SWIN_BACKBONES = {
    "swin_t": (96, (2, 2, 6, 2), (3, 6, 12, 24), 7, 224),
    "swin_b": (128, (2, 2, 18, 2), (4, 8, 16, 32), 12, 384),
}

_SWIN = "model.backbone.conv_encoder.model.swin."
_BLOCK = r"^backbone\.0\.layers\.(\d+)\.blocks\.(\d+)\."
_BLOCK_TO = _SWIN + r"encoder.layers.\1.blocks.\2."
_ENCODER = r"^transformer\.encoder\.(?:layers|text_layers|fusion_layers)\.(\d+)\."
_DECODER = r"^transformer\.decoder\.layers\.(\d+)\."

# (pattern, replacement), first match wins.
_RENAMES: list[tuple[str, str | Callable[[re.Match], str]]] = [
    (r"^backbone\.0\.patch_embed\.proj\.", _SWIN + "embeddings.patch_embeddings.projection."),
    (r"^backbone\.0\.patch_embed\.norm\.", _SWIN + "embeddings.norm."),
    (_BLOCK + r"norm1\.", _BLOCK_TO + "layernorm_before."),
    (_BLOCK + r"norm2\.", _BLOCK_TO + "layernorm_after."),
    (_BLOCK + r"attn\.relative_position_bias_table$", _BLOCK_TO + "attention.relative_position_bias.relative_position_bias_table"),
    (_BLOCK + r"attn\.proj\.", _BLOCK_TO + "attention.o_proj."),
    (_BLOCK + r"mlp\.", _BLOCK_TO + "mlp."),
    (r"^backbone\.0\.layers\.(\d+)\.downsample\.", _SWIN + r"encoder.layers.\1.downsample."),
    # IDEA's norm{k} normalises the output of stage k + 1.
    (
        r"^backbone\.0\.norm(\d)\.",
        lambda match: f"model.backbone.conv_encoder.model.hidden_states_norms.stage{int(match.group(1)) + 1}.",
    ),
    (r"^bert\.", "model.text_backbone."),
    (r"^input_proj\.", "model.input_proj_vision."),
    (r"^feat_map\.", "model.text_projection."),
    (r"^bbox_embed\.", "bbox_embed."),
    (r"^transformer\.level_embed$", "model.level_embed"),
    (r"^transformer\.tgt_embed\.", "model.query_position_embeddings."),
    (r"^transformer\.enc_output\.", "model.enc_output."),
    (r"^transformer\.enc_output_norm\.", "model.enc_output_norm."),
    (r"^transformer\.enc_out_bbox_embed\.", "model.encoder_output_bbox_embed."),
    (r"^transformer\.decoder\.norm\.", "model.decoder.layer_norm."),
    (r"^transformer\.decoder\.ref_point_head\.", "model.decoder.reference_points_head."),
    (r"^transformer\.decoder\.bbox_embed\.", "model.decoder.bbox_embed."),
    # Image encoder layers: deformable self-attention.
    (r"^transformer\.encoder\.layers\.(\d+)\.self_attn\.", r"model.encoder.layers.\1.deformable_layer.self_attn."),
    (r"^transformer\.encoder\.layers\.(\d+)\.norm1\.", r"model.encoder.layers.\1.deformable_layer.self_attn_layer_norm."),
    (r"^transformer\.encoder\.layers\.(\d+)\.linear1\.", r"model.encoder.layers.\1.deformable_layer.fc1."),
    (r"^transformer\.encoder\.layers\.(\d+)\.linear2\.", r"model.encoder.layers.\1.deformable_layer.fc2."),
    (r"^transformer\.encoder\.layers\.(\d+)\.norm2\.", r"model.encoder.layers.\1.deformable_layer.final_layer_norm."),
    # Text enhancer layers.
    (r"^transformer\.encoder\.text_layers\.(\d+)\.self_attn\.out_proj\.", r"model.encoder.layers.\1.text_enhancer_layer.self_attn.out_proj."),
    (r"^transformer\.encoder\.text_layers\.(\d+)\.linear1\.", r"model.encoder.layers.\1.text_enhancer_layer.fc1."),
    (r"^transformer\.encoder\.text_layers\.(\d+)\.linear2\.", r"model.encoder.layers.\1.text_enhancer_layer.fc2."),
    (r"^transformer\.encoder\.text_layers\.(\d+)\.norm1\.", r"model.encoder.layers.\1.text_enhancer_layer.layer_norm_before."),
    (r"^transformer\.encoder\.text_layers\.(\d+)\.norm2\.", r"model.encoder.layers.\1.text_enhancer_layer.layer_norm_after."),
    # Vision-text fusion layers.
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.gamma_v$", r"model.encoder.layers.\1.fusion_layer.vision_param"),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.gamma_l$", r"model.encoder.layers.\1.fusion_layer.text_param"),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.layer_norm_v\.", r"model.encoder.layers.\1.fusion_layer.layer_norm_vision."),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.layer_norm_l\.", r"model.encoder.layers.\1.fusion_layer.layer_norm_text."),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.attn\.(values_|out_)?v_proj\.", r"model.encoder.layers.\1.fusion_layer.attn.\2vision_proj."),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.attn\.(values_|out_)?l_proj\.", r"model.encoder.layers.\1.fusion_layer.attn.\2text_proj."),
    # Decoder layers.
    (_DECODER + r"cross_attn\.", r"model.decoder.layers.\1.encoder_attn."),
    (_DECODER + r"norm1\.", r"model.decoder.layers.\1.encoder_attn_layer_norm."),
    (_DECODER + r"ca_text\.out_proj\.", r"model.decoder.layers.\1.encoder_attn_text.out_proj."),
    (_DECODER + r"catext_norm\.", r"model.decoder.layers.\1.encoder_attn_text_layer_norm."),
    (_DECODER + r"self_attn\.out_proj\.", r"model.decoder.layers.\1.self_attn.out_proj."),
    (_DECODER + r"norm2\.", r"model.decoder.layers.\1.self_attn_layer_norm."),
    (_DECODER + r"linear1\.", r"model.decoder.layers.\1.fc1."),
    (_DECODER + r"linear2\.", r"model.decoder.layers.\1.fc2."),
    (_DECODER + r"norm3\.", r"model.decoder.layers.\1.final_layer_norm."),
]

# Fused projections, split in three along dim 0: (pattern, replacement prefix, names of the parts).
_SPLITS: list[tuple[str, str, tuple[str, str, str]]] = [
    (_BLOCK + r"attn\.qkv\.(weight|bias)$", _BLOCK_TO + "attention.", ("q_proj", "k_proj", "v_proj")),
    (
        r"^transformer\.encoder\.text_layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$",
        r"model.encoder.layers.\1.text_enhancer_layer.self_attn.",
        ("query", "key", "value"),
    ),
    (_DECODER + r"self_attn\.in_proj_(weight|bias)$", r"model.decoder.layers.\1.self_attn.", ("query", "key", "value")),
    (_DECODER + r"ca_text\.in_proj_(weight|bias)$", r"model.decoder.layers.\1.encoder_attn_text.", ("query", "key", "value")),
]

# Checkpoint entries the detector never reads: buffers transformers recomputes, BERT's pooler.
_UNUSED = re.compile(r"(relative_position_index|^bert\.embeddings\.position_ids|^bert\.pooler\.)")
# Model entries the checkpoint has no counterpart for and the detector never reads: the final
# LayerNorm of the Swin classifier (detection reads hidden_states_norms instead).
_NOT_IN_CHECKPOINT = re.compile(r"^model\.backbone\.conv_encoder\.model\.swin\.layernorm\.")


def grounding_dino_config(backbone: str):
    """transformers' GroundingDinoConfig for IDEA's Swin-T ("swin_t") or Swin-B ("swin_b") model."""
    from transformers import GroundingDinoConfig

    embed_dim, depths, num_heads, window_size, image_size = SWIN_BACKBONES[backbone]
    config = GroundingDinoConfig()
    config.backbone_config.embed_dim = embed_dim
    config.backbone_config.depths = list(depths)
    config.backbone_config.num_heads = list(num_heads)
    config.backbone_config.window_size = window_size
    config.backbone_config.image_size = image_size
    config.backbone_config.hidden_size = embed_dim * 8
    return config


def convert_original_state_dict(
    original: dict[str, torch.Tensor], expected_keys: set[str]
) -> dict[str, torch.Tensor]:
    """Rename IDEA's keys to transformers' and check that both sides are covered exactly."""
    converted: dict[str, torch.Tensor] = {}
    unmatched = []
    for raw_key, tensor in original.items():
        key = raw_key.removeprefix("module.")
        if _UNUSED.search(key):
            continue
        for pattern, prefix, parts in _SPLITS:
            match = re.match(pattern, key)
            if match:
                suffix = match.group(match.lastindex)
                target_prefix = match.expand(prefix)
                for part, chunk in zip(parts, tensor.chunk(3, dim=0)):
                    converted[f"{target_prefix}{part}.{suffix}"] = chunk.clone()
                break
        else:
            for pattern, replacement in _RENAMES:
                renamed, count = re.subn(pattern, replacement, key)
                if count:
                    converted[renamed] = tensor
                    break
            else:
                unmatched.append(key)
    unexpected = sorted(set(converted) - expected_keys) + unmatched
    missing = sorted(key for key in expected_keys - set(converted) if not _NOT_IN_CHECKPOINT.search(key))
    if missing or unexpected:
        raise CheckpointError(
            f"The checkpoint does not match Grounding DINO: {len(missing)} model keys not filled {missing[:3]}, "
            f"{len(unexpected)} checkpoint keys not used {unexpected[:3]}. Use {' or '.join(ORIGINAL_CHECKPOINT_FILES.values())}."
        )
    return converted


def read_original_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside an IDEA checkpoint ({"model": state_dict}, or a bare state dict)."""
    path = Path(path)
    files = " or ".join(ORIGINAL_CHECKPOINT_FILES.values())
    loaded = read_weights_file(path, "Grounding DINO checkpoint", f"Use {files}; download it again if it is damaged.")
    state_dict = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path} is not a Grounding DINO checkpoint (expected a state dict under 'model').")
    return state_dict


def detect_backbone(state_dict: dict[str, torch.Tensor]) -> str:
    """"swin_t" or "swin_b", from the width of the patch embedding."""
    weight = next((v for k, v in state_dict.items() if k.removeprefix("module.") == "backbone.0.patch_embed.proj.weight"), None)
    for name, (embed_dim, *_rest) in SWIN_BACKBONES.items():
        if weight is not None and weight.shape[0] == embed_dim:
            return name
    raise CheckpointError(
        "Not an original Grounding DINO checkpoint: no Swin-T or Swin-B patch embedding "
        "('backbone.0.patch_embed.proj.weight') was found."
    )


def load_original_grounding_dino(checkpoint: str | Path, tokenizer: str | Path = DEFAULT_TOKENIZER):
    """transformers' GroundingDinoForObjectDetection and processor from an IDEA checkpoint.

    tokenizer: bert-base-uncased's tokenizer, as a Hugging Face id (from the cache) or a folder.
    """
    from transformers import (
        AutoTokenizer,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    original = read_original_checkpoint(checkpoint)
    config = grounding_dino_config(detect_backbone(original))
    model = GroundingDinoForObjectDetection(config)
    converted = convert_original_state_dict(original, set(model.state_dict()))
    model.load_state_dict(converted, strict=False)  # strictness is checked above, key by key
    try:
        text_tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
    except OSError as error:
        raise ModelLoadError(
            f"Could not load the tokenizer {str(tokenizer)!r} that original Grounding DINO checkpoints use: not cached "
            f"and not downloadable here. Pass tokenizer= a folder holding bert-base-uncased's vocab.txt. ({error})"
        ) from None
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=text_tokenizer)
    return model.eval(), processor
