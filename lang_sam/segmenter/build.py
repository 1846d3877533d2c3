"""Build SAM in its three official sizes and load Meta's checkpoints safely."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lang_sam.devices import resolve_dtype
from lang_sam.errors import CheckpointError
from lang_sam.io.weights import check_sam_type, read_weights_file
from lang_sam.segmenter.image_encoder import ImageEncoderViT
from lang_sam.segmenter.mask_decoder import MaskDecoder
from lang_sam.segmenter.prompt_encoder import PromptEncoder
from lang_sam.segmenter.sam import Sam


@dataclass(frozen=True)
class SamArchitecture:
    """The image-encoder settings that tell SAM's sizes apart; everything else is shared."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]


SAM_ARCHITECTURES: dict[str, SamArchitecture] = {
    "vit_h": SamArchitecture(1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": SamArchitecture(1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": SamArchitecture(768, 12, 12, (2, 5, 8, 11)),
}

# Official file names, as users already have them.
SAM_CHECKPOINT_FILES: dict[str, str] = {
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
}


def build_sam(
    sam_type: str, checkpoint: str | Path | None = None, dtype: torch.dtype = torch.float32
) -> Sam:
    """Build SAM of size "vit_h", "vit_l" or "vit_b" in eval mode.

    With a checkpoint path, Meta's weights are loaded with strict key matching; without one the
    weights are random. dtype is the compute type (float32 or bfloat16) of the image encoder and the
    mask decoder; the prompt encoder stays float32 (bfloat16 would blur the Fourier features of point
    and box positions), and the decoder's outputs come back as float32.
    """
    check_sam_type(sam_type)
    dtype = resolve_dtype(dtype, torch.device("cpu"))  # built on the CPU; moved by the caller
    state_dict = load_sam_state_dict(checkpoint, sam_type) if checkpoint is not None else None
    sam = build_sam_from_architecture(SAM_ARCHITECTURES[sam_type])
    if state_dict is not None:
        _load_strict(sam, state_dict, Path(checkpoint))
    sam.image_encoder.to(dtype)
    sam.mask_decoder.to(dtype)
    return sam.eval()


def build_sam_from_architecture(architecture: SamArchitecture) -> Sam:
    """Build a randomly initialised SAM of any encoder size (tests use reduced depths)."""
    return Sam(
        image_encoder=ImageEncoderViT(
            embed_dim=architecture.encoder_embed_dim,
            depth=architecture.encoder_depth,
            num_heads=architecture.encoder_num_heads,
            global_attn_indexes=architecture.encoder_global_attn_indexes,
        ),
        prompt_encoder=PromptEncoder(),
        mask_decoder=MaskDecoder(),
    )


def load_sam_state_dict(checkpoint: str | Path, sam_type: str) -> dict[str, torch.Tensor]:
    """Read an official SAM checkpoint and check that it fits sam_type exactly.

    Only tensors are unpickled (``weights_only=True``); a file that holds anything else is refused.
    """
    path = Path(checkpoint)
    state_dict = read_weights_file(
        path, "SAM checkpoint", f"Use Meta's {sam_type} file {SAM_CHECKPOINT_FILES[sam_type]}; download it again if it is damaged."
    )
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path} is not a SAM state dict (a mapping of names to tensors).")
    _check_architecture(state_dict, path, sam_type)
    return state_dict


def _check_architecture(state_dict: dict[str, torch.Tensor], path: Path, sam_type: str) -> None:
    """Raise a CheckpointError naming the file's real size when it is not sam_type."""
    patch_weight = state_dict.get("image_encoder.patch_embed.proj.weight")
    if patch_weight is None:
        raise CheckpointError(
            f"{path} is not a SAM checkpoint: it has no 'image_encoder.patch_embed.proj.weight'. "
            f"Expected {SAM_CHECKPOINT_FILES[sam_type]}."
        )
    embed_dim = patch_weight.shape[0]
    depth = len({key.split(".")[2] for key in state_dict if key.startswith("image_encoder.blocks.")})
    found = next(
        (
            name
            for name, arch in SAM_ARCHITECTURES.items()
            if (arch.encoder_embed_dim, arch.encoder_depth) == (embed_dim, depth)
        ),
        None,
    )
    if found is None:
        raise CheckpointError(
            f"{path} holds an unknown SAM size (embed dim {embed_dim}, depth {depth}), but {sam_type} was "
            f"requested. Expected {SAM_CHECKPOINT_FILES[sam_type]}."
        )
    if found != sam_type:
        raise CheckpointError(
            f"{path} holds a {found} checkpoint, but {sam_type} was requested. Pass sam_type={found!r}, "
            f"or the {sam_type} file {SAM_CHECKPOINT_FILES[sam_type]}."
        )


def _load_strict(sam: Sam, state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """load_state_dict with strict keys and shapes, reported as a CheckpointError."""
    expected = sam.state_dict()
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    wrong_shape = sorted(
        key for key in expected.keys() & state_dict.keys() if expected[key].shape != state_dict[key].shape
    )
    if missing or unexpected or wrong_shape:
        raise CheckpointError(
            f"{path} does not match the SAM architecture: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}, {len(wrong_shape)} with other shapes "
            f"{wrong_shape[:3]}. Use an official SAM checkpoint."
        )
    sam.load_state_dict(state_dict, strict=True)
