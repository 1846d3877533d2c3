"""SAM weights in Hugging Face's layout (transformers' SamModel) and Meta's, one onto the other.

Pure functions over state dicts and config dicts, so that loading, converting and testing share one
mapping. Both layouts hold the same tensors under other names (the image encoder's qkv stays fused
in both); SamModel keeps one extra name for the prompt encoder's Gaussian matrix, tied to
``shared_image_embedding.positional_embedding``, which save_pretrained writes alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from lang_sam.errors import CheckpointError
from lang_sam.registry import SAM_MODELS, TRANSFORMERS_SAM_MODEL_TYPE, SamArchitecture

HF_MODEL_TYPE = TRANSFORMERS_SAM_MODEL_TYPE
HF_POSITIONAL = "shared_image_embedding.positional_embedding"
HF_POSITIONAL_TIED = "prompt_encoder.shared_embedding.positional_embedding"
META_POSITIONAL = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"

# What a placeholder of the templates below may stand for: one name segment each.
_PLACEHOLDERS = {
    "n": r"\d+",
    "param": r"weight|bias",
    "rel": r"rel_pos_h|rel_pos_w",
    "lin": r"lin1|lin2",
    "attn": r"self_attn|cross_attn_token_to_image|cross_attn_image_to_token",
    "proj": r"q_proj|k_proj|v_proj|out_proj",
    "norm": r"1|2|3|4",
}

# (Meta's name, SamModel's name) for every tensor of SAM, as whole-name templates. The first
# template a name matches decides, in either direction; a name matching none is refused.
_NAME_PAIRS = (
    ("image_encoder.pos_embed", "vision_encoder.pos_embed"),
    ("image_encoder.patch_embed.proj.{param}", "vision_encoder.patch_embed.projection.{param}"),
    ("image_encoder.blocks.{n}.norm{norm}.{param}", "vision_encoder.layers.{n}.layer_norm{norm}.{param}"),
    ("image_encoder.blocks.{n}.attn.{rel}", "vision_encoder.layers.{n}.attn.{rel}"),
    ("image_encoder.blocks.{n}.attn.qkv.{param}", "vision_encoder.layers.{n}.attn.qkv.{param}"),
    ("image_encoder.blocks.{n}.attn.proj.{param}", "vision_encoder.layers.{n}.attn.proj.{param}"),
    ("image_encoder.blocks.{n}.mlp.{lin}.{param}", "vision_encoder.layers.{n}.mlp.{lin}.{param}"),
    ("image_encoder.neck.0.weight", "vision_encoder.neck.conv1.weight"),
    ("image_encoder.neck.1.{param}", "vision_encoder.neck.layer_norm1.{param}"),
    ("image_encoder.neck.2.weight", "vision_encoder.neck.conv2.weight"),
    ("image_encoder.neck.3.{param}", "vision_encoder.neck.layer_norm2.{param}"),
    (META_POSITIONAL, HF_POSITIONAL),
    ("prompt_encoder.point_embeddings.{n}.weight", "prompt_encoder.point_embed.{n}.weight"),
    ("prompt_encoder.not_a_point_embed.weight", "prompt_encoder.not_a_point_embed.weight"),
    ("prompt_encoder.no_mask_embed.weight", "prompt_encoder.no_mask_embed.weight"),
    ("prompt_encoder.mask_downscaling.0.{param}", "prompt_encoder.mask_embed.conv1.{param}"),
    ("prompt_encoder.mask_downscaling.1.{param}", "prompt_encoder.mask_embed.layer_norm1.{param}"),
    ("prompt_encoder.mask_downscaling.3.{param}", "prompt_encoder.mask_embed.conv2.{param}"),
    ("prompt_encoder.mask_downscaling.4.{param}", "prompt_encoder.mask_embed.layer_norm2.{param}"),
    ("prompt_encoder.mask_downscaling.6.{param}", "prompt_encoder.mask_embed.conv3.{param}"),
    ("mask_decoder.iou_token.weight", "mask_decoder.iou_token.weight"),
    ("mask_decoder.mask_tokens.weight", "mask_decoder.mask_tokens.weight"),
    ("mask_decoder.transformer.layers.{n}.{attn}.{proj}.{param}", "mask_decoder.transformer.layers.{n}.{attn}.{proj}.{param}"),
    ("mask_decoder.transformer.layers.{n}.norm{norm}.{param}", "mask_decoder.transformer.layers.{n}.layer_norm{norm}.{param}"),
    ("mask_decoder.transformer.layers.{n}.mlp.{lin}.{param}", "mask_decoder.transformer.layers.{n}.mlp.{lin}.{param}"),
    ("mask_decoder.transformer.final_attn_token_to_image.{proj}.{param}",
     "mask_decoder.transformer.final_attn_token_to_image.{proj}.{param}"),
    ("mask_decoder.transformer.norm_final_attn.{param}", "mask_decoder.transformer.layer_norm_final_attn.{param}"),
    ("mask_decoder.output_upscaling.0.{param}", "mask_decoder.upscale_conv1.{param}"),
    ("mask_decoder.output_upscaling.1.{param}", "mask_decoder.upscale_layer_norm.{param}"),
    ("mask_decoder.output_upscaling.3.{param}", "mask_decoder.upscale_conv2.{param}"),
    # Meta's 3-layer MLPs are layers.0-2; SamModel's are proj_in, layers.0, proj_out.
    ("mask_decoder.output_hypernetworks_mlps.{n}.layers.0.{param}", "mask_decoder.output_hypernetworks_mlps.{n}.proj_in.{param}"),
    ("mask_decoder.output_hypernetworks_mlps.{n}.layers.1.{param}", "mask_decoder.output_hypernetworks_mlps.{n}.layers.0.{param}"),
    ("mask_decoder.output_hypernetworks_mlps.{n}.layers.2.{param}", "mask_decoder.output_hypernetworks_mlps.{n}.proj_out.{param}"),
    ("mask_decoder.iou_prediction_head.layers.0.{param}", "mask_decoder.iou_prediction_head.proj_in.{param}"),
    ("mask_decoder.iou_prediction_head.layers.1.{param}", "mask_decoder.iou_prediction_head.layers.0.{param}"),
    ("mask_decoder.iou_prediction_head.layers.2.{param}", "mask_decoder.iou_prediction_head.proj_out.{param}"),
)

# Everything in SamModel's config that Meta's SAM fixes (as SamConfig's defaults have it): a config
# that says otherwise describes a model this project does not build.
_FIXED_CONFIG = {
    "vision_config": {
        "image_size": 1024, "patch_size": 16, "window_size": 14, "output_channels": 256, "num_channels": 3,
        "mlp_ratio": 4.0, "qkv_bias": True, "use_abs_pos": True, "use_rel_pos": True, "hidden_act": "gelu",
        "layer_norm_eps": 1e-6, "num_pos_feats": 128,
    },
    "prompt_encoder_config": {
        "hidden_size": 256, "image_size": 1024, "patch_size": 16, "image_embedding_size": 64,
        "mask_input_channels": 16, "num_point_embeddings": 4, "hidden_act": "gelu", "layer_norm_eps": 1e-6,
    },
    "mask_decoder_config": {
        "hidden_size": 256, "hidden_act": "relu", "mlp_dim": 2048, "num_hidden_layers": 2, "num_attention_heads": 8,
        "attention_downsample_rate": 2, "num_multimask_outputs": 3, "iou_head_depth": 3, "iou_head_hidden_dim": 256,
    },
}
# mask_decoder_config.layer_norm_eps is not fixed: it is the eps of the two-way transformer's
# norm1-4 (SamArchitecture.decoder_layer_norm_eps), 1e-5 in Meta's SAM, and this when config.json
# leaves it out (SamMaskDecoderConfig's default, as in the facebook/sam-vit-* configs).
HF_DEFAULT_DECODER_LAYER_NORM_EPS = 1e-6
_SUB_MODEL_TYPES = {
    "vision_config": "sam_vision_model", "prompt_encoder_config": "sam_prompt_encoder",
    "mask_decoder_config": "sam_mask_decoder",
}


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)  # literal, name, literal, name, ...
    pattern = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>{_PLACEHOLDERS[part]})" for index, part in enumerate(parts)
    )
    return re.compile(pattern)


_META_TO_HF = [(_template_regex(meta), hf) for meta, hf in _NAME_PAIRS]
_HF_TO_META = [(_template_regex(hf), meta) for meta, hf in _NAME_PAIRS]


def _rename(name: str, rules: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, template in rules:
        match = pattern.fullmatch(name)
        if match:
            return template.format(**match.groupdict())
    return None


def hf_name(meta_name: str) -> str:
    """SamModel's name of a tensor named meta_name in Meta's layout (the name itself if SAM has no
    such tensor), e.g. to say which tensor a Hugging Face folder lacks."""
    return _rename(meta_name, _META_TO_HF) or meta_name


def meta_to_hf(
    state_dict: Mapping[str, torch.Tensor], architecture: SamArchitecture
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Meta's state dict as SamModel's (the same tensors, renamed) and the config.json that
    describes its architecture, as SamModel.save_pretrained would write them (mask_decoder_config's
    layer_norm_eps is the architecture's: 1e-5 for Meta's files, so SamModel computes Meta's SAM)."""
    renamed = {name: _rename(name, _META_TO_HF) for name in state_dict}
    unknown = sorted(name for name, new_name in renamed.items() if new_name is None)
    if unknown:
        raise CheckpointError(f"{len(unknown)} tensors are not part of SAM in Meta's layout: {unknown[:3]}.")
    hf_state_dict = {renamed[name]: tensor for name, tensor in state_dict.items()}
    config = {
        "model_type": HF_MODEL_TYPE,
        "architectures": ["SamModel"],
        **{section: {"model_type": _SUB_MODEL_TYPES[section], **values} for section, values in _FIXED_CONFIG.items()},
    }
    config["vision_config"].update(
        hidden_size=architecture.encoder_embed_dim,
        num_hidden_layers=architecture.encoder_depth,
        num_attention_heads=architecture.encoder_num_heads,
        global_attn_indexes=list(architecture.encoder_global_attn_indexes),
        mlp_dim=int(architecture.encoder_embed_dim * _FIXED_CONFIG["vision_config"]["mlp_ratio"]),
    )
    config["mask_decoder_config"]["layer_norm_eps"] = architecture.decoder_layer_norm_eps
    return hf_state_dict, config


def hf_to_meta(hf_state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """SamModel's state dict in Meta's layout. config (config.json) is checked to describe a SAM
    this project builds; a tensor of no SAM name is refused, naming it. The tied copy of the
    Gaussian matrix may be present (older files) but must then equal the one it is tied to."""
    architecture_from_hf_config(config)
    tensors = dict(hf_state_dict)
    tied = tensors.pop(HF_POSITIONAL_TIED, None)
    if tied is not None:
        if HF_POSITIONAL not in tensors:
            tensors[HF_POSITIONAL] = tied
        elif not torch.equal(tensors[HF_POSITIONAL], tied):
            raise CheckpointError(
                f"{HF_POSITIONAL} and {HF_POSITIONAL_TIED} differ, but SamModel ties them: the weights are damaged."
            )
    renamed = {name: _rename(name, _HF_TO_META) for name in tensors}
    unknown = sorted(name for name, new_name in renamed.items() if new_name is None)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} tensors are not part of a transformers SamModel: {unknown[:3]}. Save the model again "
            "with SamModel.save_pretrained."
        )
    return {renamed[name]: tensor for name, tensor in tensors.items()}


def architecture_from_hf_config(config: Mapping[str, Any]) -> SamArchitecture:
    """The image encoder's size from config.json's vision_config and the two-way transformer's eps
    from mask_decoder_config.layer_norm_eps (1e-6 when left out, as transformers reads it); a config
    of another model type, or one whose fixed settings (patch size, window, decoder, ...) differ
    from SAM's, is refused."""
    model_type = config.get("model_type")
    if model_type != HF_MODEL_TYPE:
        raise CheckpointError(
            f"config.json says model_type {model_type!r}, not {HF_MODEL_TYPE!r}: this is not a transformers SAM "
            "(SamModel). Give a folder saved by SamModel.save_pretrained, or Meta's .pth file."
        )
    eps = (config.get("mask_decoder_config") or {}).get("layer_norm_eps", HF_DEFAULT_DECODER_LAYER_NORM_EPS)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
        raise CheckpointError(f"config.json's mask_decoder_config.layer_norm_eps is {eps!r}, not a positive number.")
    vision = config.get("vision_config") or {}
    default = SAM_MODELS["vit_b"].architecture  # what SamVisionConfig assumes for a value left out
    try:
        architecture = SamArchitecture(
            encoder_embed_dim=int(vision.get("hidden_size", default.encoder_embed_dim)),
            encoder_depth=int(vision.get("num_hidden_layers", default.encoder_depth)),
            encoder_num_heads=int(vision.get("num_attention_heads", default.encoder_num_heads)),
            encoder_global_attn_indexes=tuple(
                int(index) for index in vision.get("global_attn_indexes", default.encoder_global_attn_indexes)
            ),
            decoder_layer_norm_eps=float(eps),
        )
    except (TypeError, ValueError):
        raise CheckpointError(f"config.json's vision_config is malformed: {dict(vision)}.") from None
    _check_plausible(architecture)
    mlp_dim = int(architecture.encoder_embed_dim * _FIXED_CONFIG["vision_config"]["mlp_ratio"])
    differing = []
    for section, fixed in _FIXED_CONFIG.items():
        given = config.get(section) or {}
        expected = {**fixed, "mlp_dim": mlp_dim} if section == "vision_config" else fixed
        differing += [
            f"{section}.{key} = {given[key]!r} (SAM: {value!r})"
            for key, value in expected.items()
            if given.get(key) is not None and given[key] != value
        ]
    if differing:
        raise CheckpointError(
            f"config.json describes a SAM variant lang-sam does not build: {'; '.join(differing)}. Only the image "
            "encoder's width, depth, heads and global-attention blocks, and the mask decoder's layer_norm_eps, may "
            "differ from Meta's SAM."
        )
    return architecture


# A config's image encoder may be at most this far beyond vit_h's (width 1280, 32 blocks, 16 heads):
# nothing published comes near, and building a million blocks would run for hours before the weights
# could be found not to match.
MAX_ENCODER_WIDTH, MAX_ENCODER_DEPTH, MAX_ENCODER_HEADS = 4 * 1280, 4 * 32, 4 * 16


def _check_plausible(architecture: SamArchitecture) -> None:
    """Refuse an image encoder no SAM could have: sizes not positive or far beyond vit_h's, a width
    the heads do not divide, global-attention blocks that do not exist."""
    width, depth, heads = architecture.encoder_embed_dim, architecture.encoder_depth, architecture.encoder_num_heads
    problems = [
        f"{key} = {value} (1 to {limit})"
        for key, value, limit in (("hidden_size", width, MAX_ENCODER_WIDTH), ("num_hidden_layers", depth, MAX_ENCODER_DEPTH),
                                  ("num_attention_heads", heads, MAX_ENCODER_HEADS))
        if not 1 <= value <= limit
    ]
    if not problems and width % heads:
        problems.append(f"hidden_size {width} is not a multiple of num_attention_heads {heads}")
    outside = [index for index in architecture.encoder_global_attn_indexes if not 0 <= index < depth]
    if not problems and outside:
        problems.append(f"global_attn_indexes {outside} name blocks beyond the {depth} there are")
    if problems:
        raise CheckpointError(
            f"config.json's vision_config describes no SAM image encoder: {'; '.join(problems)}. The largest published "
            "SAM, vit_h, has hidden_size 1280, 32 layers and 16 heads: give the config saved with the weights."
        )
