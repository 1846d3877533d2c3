"""Device and dtype choice, shared by the detector and the segmenter. No process-wide settings."""

from __future__ import annotations

import torch

from lang_sam.errors import InvalidOptionError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, or the first available of CUDA, MPS and CPU."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InvalidOptionError(f"Unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'. ({error})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidOptionError(f"Device {device!r} was asked for, but CUDA is not available here; use 'cpu'.")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidOptionError(f"Device {device!r} was asked for, but MPS is not available here; use 'cpu'.")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise InvalidOptionError(f"Unsupported device {device!r}: use 'cpu', 'cuda' or 'mps'.")
    return resolved


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """float32 (the default) or bfloat16, checked against what the device supports."""
    if dtype is None:
        return torch.float32
    resolved = DTYPES.get(dtype) if isinstance(dtype, str) else dtype
    if resolved not in (torch.float32, torch.bfloat16):
        raise InvalidOptionError(f"Unsupported dtype {dtype!r}: use 'float32' or 'bfloat16'.")
    if resolved == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InvalidOptionError("This GPU does not support bfloat16; use dtype='float32'.")
    return resolved
