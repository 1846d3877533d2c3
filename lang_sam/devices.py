"""Device and dtype choice, shared by the detector and the segmenter. No process-wide settings."""

from __future__ import annotations

import functools
import os
import time
import warnings
from pathlib import Path

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
    """float32 or bfloat16, checked against what the device supports.

    "auto" (or None) picks bfloat16 only where the device runs it natively and faster (see
    auto_dtype), float32 elsewhere. An explicit bfloat16 on a CPU
    that only emulates it works but warns once: it is several times slower than float32 there.
    """
    if dtype is None or dtype == "auto":
        return auto_dtype(device)
    resolved = DTYPES.get(dtype) if isinstance(dtype, str) else dtype
    if resolved not in (torch.float32, torch.bfloat16):
        raise InvalidOptionError(f"Unsupported dtype {dtype!r}: use 'auto', 'float32' or 'bfloat16'.")
    if resolved == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InvalidOptionError("This GPU does not support bfloat16; use dtype='float32' (or 'auto').")
    if resolved == torch.bfloat16 and device.type == "cpu" and not native_bf16(device):
        _warn_emulated_bf16()
    return resolved


def native_bf16(device: torch.device) -> bool:
    """Whether device computes bfloat16 in hardware (MPS is treated as not: float32 is the safe pick)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(cpu_bf16_instructions())
    return False


def auto_dtype(device: torch.device) -> torch.dtype:
    """What dtype="auto" means on device: bfloat16 on a CUDA GPU with bf16; on a CPU with native
    bf16, bfloat16 only if its matrix products there are measurably faster than float32 (AMX and
    AMD's AVX512-BF16 run them 2-6x faster; an Intel CPU with AVX512-BF16 but no AMX, measured here,
    ran them at half fp32's speed); float32 everywhere else."""
    if device.type == "cuda":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if device.type == "cpu" and native_bf16(device) and cpu_bf16_speedup() >= 1.2:
        return torch.bfloat16
    return torch.float32


@functools.cache
def cpu_bf16_speedup() -> float:
    """float32 time / bfloat16 time of a (1024 x 512) @ (512 x 512) product on this CPU, best of 5
    (about 30 ms, measured once per process): the layers of SAM and Grounding DINO are such products."""
    timings = {}
    for dtype in (torch.float32, torch.bfloat16):
        inputs, weight = torch.randn(1024, 512, dtype=dtype), torch.randn(512, 512, dtype=dtype)
        torch.nn.functional.linear(inputs, weight)  # warm-up: kernel choice, weight layout
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            torch.nn.functional.linear(inputs, weight)
            best = min(best, time.perf_counter() - started)
        timings[dtype] = best
    return timings[torch.float32] / timings[torch.bfloat16]


@functools.cache
def _warn_emulated_bf16() -> None:
    warnings.warn(
        f"bfloat16 on {cpu_model()} is emulated (no AMX, AVX512-BF16 or Arm BF16): expect it to run several "
        "times slower than float32 (measured on an AVX2-only EPYC: a vit_b encoder 270 s against 40 s). "
        "Use dtype='auto' (the default), which picks float32 here.",
        RuntimeWarning,
        stacklevel=3,
    )


def cpu_model() -> str:
    """The processor's name as the OS reports it (e.g. "AMD EPYC 7B13"), or the platform's guess."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def cpu_bf16_instructions() -> tuple[str, ...]:
    """The CPU's native bfloat16 matrix instructions: AMX and AVX512-BF16 on x86, BF16 on Arm.

    Without any, PyTorch still runs bfloat16 on the CPU but emulates it, far slower than float32.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return tuple(flag for flag in ("amx_bf16", "avx512_bf16", "bf16") if flag in flags)


def describe_cpu() -> str:
    """One line naming the CPU and whether its bfloat16 is native, for test and benchmark output."""
    native = cpu_bf16_instructions()
    auto = str(auto_dtype(torch.device("cpu"))).removeprefix("torch.")
    if native:
        bf16 = f"bf16 native ({', '.join(native)}), bf16 matmul {cpu_bf16_speedup():.1f}x fp32's speed, auto = {auto}"
    else:
        bf16 = f"bf16 NOT native (emulated, far slower than fp32), auto = {auto}"
    return f"{cpu_model()}, {os.cpu_count()} cores, {bf16}"


def bf16_skip_reason() -> str | None:
    """Why a benchmark leaves out its bfloat16 runs on this CPU (None: bf16 is native here)."""
    if cpu_bf16_instructions():
        return None
    return (f"bf16 skipped: {cpu_model()} has no native bfloat16 (AMX, AVX512-BF16 or Arm BF16), and emulated "
            "bf16 runs many times slower than fp32 (a vit_h encoder would take hours)")
