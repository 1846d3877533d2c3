"""Writing files so that nothing a user keeps is ever half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMPORARY_SUFFIX = ".part"


def write_atomically(destination: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file in the same folder, then rename: never a half-written file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=TEMPORARY_SUFFIX, dir=destination.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, destination)
    finally:
        Path(temporary).unlink(missing_ok=True)


def remove_leftovers(folder: Path) -> None:
    """Delete the temporary files of a run that was killed before it could rename them."""
    for leftover in folder.glob(f".*{TEMPORARY_SUFFIX}"):
        leftover.unlink(missing_ok=True)
