"""Build SAM in its official sizes or any architecture a checkpoint holds, and load weights safely:
Meta's state dicts (.pth, .safetensors) and transformers SAM folders or repo ids alike."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from lang_sam.devices import resolve_dtype
from lang_sam.errors import CheckpointError, InvalidOptionError
from lang_sam.io.weights import (
    HF_CONFIG_FILE, HF_WEIGHTS_FILE, find_sam_checkpoint, is_hub_repo_id, local_sam_checkpoint,
    read_weights_file,
)
from lang_sam.registry import SAM_MODELS, SamArchitecture, default_sam_type
from lang_sam.segmenter.hf_format import architecture_from_hf_config, hf_name, hf_to_meta
from lang_sam.segmenter.image_encoder import ImageEncoderViT
from lang_sam.segmenter.mask_decoder import MaskDecoder
from lang_sam.segmenter.prompt_encoder import PromptEncoder
from lang_sam.segmenter.sam import Sam
from lang_sam.segmenter.transformer import TwoWayTransformer

GLOBAL_ATTENTION_SIZE = 64  # 1024 pixels / 16-pixel patches: a global block's relative-position table


def build_sam(
    sam_type: str | None = None, checkpoint: str | Path | None = None, dtype: torch.dtype = torch.float32
) -> Sam:
    """Build SAM in eval mode: an official size ("vit_h", "vit_l", "vit_b") or whatever a checkpoint holds.

    checkpoint: Meta's state dict (.pth or .safetensors), a transformers SAM folder, or a Hugging
    Face repo id (see read_sam_checkpoint). With an official sam_type and a checkpoint, it must hold
    that size (strict key matching); without a checkpoint the weights are random. With sam_type
    None (or the name of a SAM of your own) the architecture is the checkpoint's. dtype is the compute type (float32
    or bfloat16) of the image encoder and the mask decoder; the prompt encoder stays float32
    (bfloat16 would blur the Fourier features of point and box positions), and the decoder's
    outputs come back as float32.
    """
    dtype = resolve_dtype(dtype, torch.device("cpu"))  # built on the CPU; moved by the caller
    official = SAM_MODELS.get(sam_type) if isinstance(sam_type, str) else None
    if checkpoint is None:
        if official is None:
            raise InvalidOptionError(
                f"Cannot build SAM {sam_type!r} without its checkpoint: give the .pth file, or one of the "
                f"official sizes {', '.join(SAM_MODELS)} for random weights."
            )
        sam = build_sam_from_architecture(official.architecture)
    else:
        state_dict, architecture = read_sam_checkpoint(checkpoint, official.name if official else None)
        sam = build_sam_from_architecture(architecture)
        sam.load_state_dict(state_dict, strict=True)
    sam.image_encoder.to(dtype)
    sam.mask_decoder.to(dtype)
    return sam.eval()


def load_sam(
    sam_type: str | None = None,
    checkpoint: str | Path | None = None,
    dtype: torch.dtype | str | None = None,
    checkpoint_dir: str | Path | None = None,
) -> tuple[str, Sam]:
    """The SAM named sam_type (see lang_sam.registry) or held by checkpoint, found or downloaded,
    and its name: sam_type, else the official size the file holds, else the repo id or the file's
    (or folder's) stem. Without
    either, vit_h. With both, a name that is not an official size only names the model.
    checkpoint_dir: the folder searched by name (default $LANG_SAM_CHECKPOINTS)."""
    sam_type = default_sam_type(sam_type, checkpoint)
    path = find_sam_checkpoint(sam_type, checkpoint, checkpoint_dir=checkpoint_dir)  # checks the name if it must
    sam = build_sam(sam_type, path, dtype=dtype)
    own_name = str(checkpoint) if is_hub_repo_id(checkpoint) else path.stem
    return sam_type or official_sam_name(architecture_of(sam)) or own_name, sam


def build_sam_from_architecture(architecture: SamArchitecture) -> Sam:
    """Build a randomly initialised SAM of any encoder size (tests use reduced depths), its mask
    decoder's two-way transformer normalising with the architecture's eps."""
    return Sam(
        image_encoder=ImageEncoderViT(
            embed_dim=architecture.encoder_embed_dim,
            depth=architecture.encoder_depth,
            num_heads=architecture.encoder_num_heads,
            global_attn_indexes=architecture.encoder_global_attn_indexes,
        ),
        prompt_encoder=PromptEncoder(),
        mask_decoder=MaskDecoder(transformer=TwoWayTransformer(layer_norm_eps=architecture.decoder_layer_norm_eps)),
    )


def read_sam_checkpoint(
    checkpoint: str | Path, sam_type: str | None = None
) -> tuple[dict[str, torch.Tensor], SamArchitecture]:
    """The weights of a SAM checkpoint in Meta's layout and the architecture they fill, checked
    strictly (every tensor used, none missing, every shape right) without building the model.

    checkpoint: Meta's state dict (.pth, or .safetensors), a transformers SAM folder (config.json
    and model.safetensors, as SamModel.save_pretrained writes them) or a Hugging Face repo id in
    the Hugging Face cache. sam_type, an official size, is the size it must hold.
    """
    path = local_sam_checkpoint(checkpoint)
    if path.is_dir():
        state_dict, architecture = load_hf_sam_state_dict(path)
        name_in_file, remedy = hf_name, "Save the model again with SamModel.save_pretrained."
    else:
        state_dict = load_sam_state_dict(path, sam_type)
        architecture = architecture_from_state_dict(state_dict, path)
        name_in_file, remedy = str, "Use a SAM checkpoint in Meta's format."
    if sam_type is not None:
        _check_size(architecture, sam_type, path)
    _check_keys(architecture, state_dict, path, name_in_file, remedy)
    return state_dict, architecture


def load_hf_sam_state_dict(folder: Path) -> tuple[dict[str, torch.Tensor], SamArchitecture]:
    """The weights of a transformers SAM folder in Meta's layout, and the architecture its
    config.json gives (not yet checked against the weights: read_sam_checkpoint does; the heads
    show in the shapes of the relative-position tables, head_dim columns each)."""
    config_path = folder / HF_CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(
            f"SAM checkpoint {folder} is a folder, not a file, and has no {HF_CONFIG_FILE}: it is not a transformers "
            "SAM folder either. Give Meta's .pth file, or a folder saved by SamModel.save_pretrained."
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"Could not read {config_path} ({error}). Save the model again with save_pretrained.") from None
    try:
        if not isinstance(config, dict):
            raise CheckpointError("config.json is not a JSON object.")
        architecture = architecture_from_hf_config(config)
        remedy = f"Save the model again with SamModel.save_pretrained (it writes {HF_WEIGHTS_FILE})."
        if not (folder / HF_WEIGHTS_FILE).is_file():
            raise CheckpointError(f"it has no {HF_WEIGHTS_FILE}, the weights its config.json describes. {remedy}")
        hf_state_dict = read_weights_file(folder / HF_WEIGHTS_FILE, "SAM weights file", remedy)
        return hf_to_meta(hf_state_dict, config), architecture
    except CheckpointError as error:
        raise CheckpointError(f"{folder}: {error}") from None


def load_sam_state_dict(checkpoint: str | Path, sam_type: str | None = None) -> dict[str, torch.Tensor]:
    """Read a SAM checkpoint (Meta's format: a state dict); sam_type, an official size, names the
    file to use instead in the error messages.

    Only tensors are unpickled (``weights_only=True``); a file that holds anything else is refused.
    """
    path = Path(checkpoint)
    remedy = (
        f"Use Meta's {sam_type} file {SAM_MODELS[sam_type].file_name}; download it again if it is damaged."
        if sam_type else "Use a SAM checkpoint in Meta's format."
    )
    state_dict = read_weights_file(path, "SAM checkpoint", remedy)
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path} is not a SAM state dict (a mapping of names to tensors).")
    return state_dict


def _check_size(architecture: SamArchitecture, sam_type: str, path: Path) -> None:
    """Raise a CheckpointError naming what the file holds unless it is the official size sam_type."""
    found = official_sam_name(architecture)
    if found == sam_type:
        return
    held = f"a {found} checkpoint" if found else (
        f"a SAM of its own architecture (encoder width {architecture.encoder_embed_dim}, depth "
        f"{architecture.encoder_depth})"
    )
    advice = f"Pass sam_type={found!r}" if found else "Leave the SAM type unset to load it as it is"
    raise CheckpointError(
        f"{path} holds {held}, but {sam_type} was requested. {advice}, or the {sam_type} file "
        f"{SAM_MODELS[sam_type].file_name}."
    )


def architecture_from_state_dict(state_dict: dict[str, torch.Tensor], path: Path) -> SamArchitecture:
    """The image encoder's width, depth, heads and global-attention blocks, read from its tensors:
    each block's relative-position table has head_dim columns and 2 * size - 1 rows, where size
    is 64 in a global block and the window (14) elsewhere."""
    patch_weight = state_dict.get("image_encoder.patch_embed.proj.weight")
    depth = len({key.split(".")[2] for key in state_dict if key.startswith("image_encoder.blocks.")})
    tables = [state_dict.get(f"image_encoder.blocks.{index}.attn.rel_pos_h") for index in range(depth)]
    if patch_weight is None or depth == 0 or any(table is None or table.ndim != 2 for table in tables):
        raise CheckpointError(
            f"{path} is not a SAM checkpoint: it has no image encoder in Meta's layout "
            f"('image_encoder.patch_embed.proj.weight', 'image_encoder.blocks.N.attn.rel_pos_h')."
        )
    embed_dim = patch_weight.shape[0]
    return SamArchitecture(
        encoder_embed_dim=embed_dim,
        encoder_depth=depth,
        encoder_num_heads=max(1, embed_dim // tables[0].shape[1]),
        encoder_global_attn_indexes=tuple(
            index for index, table in enumerate(tables) if table.shape[0] == 2 * GLOBAL_ATTENTION_SIZE - 1
        ),
    )


def architecture_of(sam: Sam) -> SamArchitecture:
    """The architecture of a built SAM (so a model loaded from any file can say what it is)."""
    blocks = sam.image_encoder.blocks
    return SamArchitecture(
        encoder_embed_dim=sam.image_encoder.patch_embed.proj.out_channels,
        encoder_depth=len(blocks),
        encoder_num_heads=blocks[0].attn.num_heads,
        encoder_global_attn_indexes=tuple(index for index, block in enumerate(blocks) if block.window_size == 0),
        decoder_layer_norm_eps=sam.mask_decoder.transformer.layers[0].norm1.eps,
    )


def official_sam_name(architecture: SamArchitecture) -> str | None:
    """"vit_h", "vit_l" or "vit_b" when architecture is one of Meta's sizes, else None."""
    return next((name for name, model in SAM_MODELS.items() if model.architecture == architecture), None)


def _check_keys(
    architecture: SamArchitecture, state_dict: dict[str, torch.Tensor], path: Path,
    name_in_file: Callable[[str], str], remedy: str,
) -> None:
    """A CheckpointError naming the missing, unexpected and misshapen tensors (as the file names
    them: name_in_file maps Meta's names) unless state_dict fills SAM of this architecture exactly."""
    with torch.device("meta"):  # names and shapes only: no memory, no random initialisation
        expected = build_sam_from_architecture(architecture).state_dict()
    missing = sorted(name_in_file(key) for key in expected.keys() - state_dict.keys())
    unexpected = sorted(name_in_file(key) for key in state_dict.keys() - expected.keys())
    wrong_shape = sorted(
        name_in_file(key) for key in expected.keys() & state_dict.keys() if expected[key].shape != state_dict[key].shape
    )
    if missing or unexpected or wrong_shape:
        raise CheckpointError(
            f"{path} does not match the SAM architecture: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}, {len(wrong_shape)} with other shapes "
            f"{wrong_shape[:3]}. {remedy}"
        )
