"""What dtype "auto" resolves to on the CPU, forced: an input of the tests, not an accident of the machine.

On an Intel CPU with AMX "auto" means bfloat16, elsewhere float32 (lang_sam.devices.auto_dtype). With
LANG_SAM_TEST_AUTO_DTYPE=bfloat16 (or float32) a test run resolves "auto" as such a machine would, so a
developer on either kind sees what the other would. tests/conftest.py applies it to the test processes;
this folder on PYTHONPATH makes Python run this file at start-up (as `sitecustomize`) in every process
a test starts (the CLI, the app, the server), so they resolve "auto" the same way. Only the tests read
the variable; lang-sam itself never does.
"""

from __future__ import annotations

import os

VARIABLE = "LANG_SAM_TEST_AUTO_DTYPE"


def force_auto_dtype(name: str) -> None:
    """Make lang_sam.devices answer on the CPU as a machine whose dtype "auto" is `name` ("float32" or
    "bfloat16"): auto_dtype gives it, and with bfloat16 the CPU's bf16 counts as native (as with AMX),
    so the resolved dtype passed on to a model raises no warning about emulation."""
    from lang_sam import devices

    if name not in devices.DTYPES:
        raise ValueError(f"{VARIABLE}={name!r}: use one of {', '.join(devices.DTYPES)}")
    forced = devices.DTYPES[name]
    measured_auto = getattr(devices.auto_dtype, "measured", devices.auto_dtype)
    measured_native = getattr(devices.native_bf16, "measured", devices.native_bf16)

    def auto_dtype(device):
        return forced if device.type == "cpu" else measured_auto(device)

    def native_bf16(device):
        return forced == devices.DTYPES["bfloat16"] if device.type == "cpu" else measured_native(device)

    auto_dtype.measured, native_bf16.measured = measured_auto, measured_native
    devices.auto_dtype, devices.native_bf16 = auto_dtype, native_bf16


def _run_the_next_sitecustomize() -> None:
    """Run the sitecustomize this one hides on sys.path (a distribution's, coverage's), if any."""
    import importlib.machinery
    import importlib.util
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    later = [path for path in sys.path if os.path.abspath(path or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", later)
    if spec is not None and spec.loader is not None and spec.origin != os.path.abspath(__file__):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


if __name__ == "sitecustomize":  # run by Python at start-up, not imported by the tests' conftest
    _run_the_next_sitecustomize()
    if os.environ.get(VARIABLE):
        force_auto_dtype(os.environ[VARIABLE])
