"""Writing files so that nothing a user keeps is ever half-written."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from lang_sam.errors import InvalidOptionError

TEMPORARY_SUFFIX = ".part"


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Finished files and folders get the permissions any other tool would give them (mkstemp makes
# files 0600, mkdtemp folders 0700).
FILE_MODE = 0o666 & ~_process_umask()
FOLDER_MODE = 0o777 & ~_process_umask()


def write_atomically(destination: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file in the same folder, then rename: never a half-written file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=TEMPORARY_SUFFIX, dir=destination.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, destination)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_folder_atomically(destination: Path, write: Callable[[Path], object]) -> None:
    """Fill a temporary folder beside destination, then rename it into place: never a half-filled
    folder. An existing destination is moved aside first and removed once the new one stands."""
    temporary = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=TEMPORARY_SUFFIX, dir=destination.parent))
    replaced = temporary.with_name(f"{temporary.name}.replaced")
    try:
        write(temporary)
        os.chmod(temporary, FOLDER_MODE)
        if destination.exists():
            os.replace(destination, replaced)
        try:
            os.replace(temporary, destination)
        except OSError:
            if replaced.exists():
                os.replace(replaced, destination)
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(replaced, ignore_errors=True)


@contextmanager
def write_files_atomically(destination: Path) -> Iterator[Path]:
    """A path, in a temporary folder beside destination, for a writer that needs a file name (GDAL)
    or makes several files (a Shapefile's .shx, .dbf, ...): once the block ends, the files made
    there (destination's name with any suffix) are renamed into place; on an error or Ctrl+C none
    is, and the folder goes: never a half-written output."""
    if not destination.parent.is_dir():
        raise InvalidOptionError(f"Cannot write {destination}: the folder {destination.parent} does not exist.")
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=TEMPORARY_SUFFIX, dir=destination.parent))
    except OSError as error:
        raise InvalidOptionError(f"Cannot write {destination} ({error.strerror}); choose a folder you can write to.") from None
    try:
        yield folder / destination.name
        for made in sorted(folder.iterdir()):
            os.chmod(made, FILE_MODE)
            os.replace(made, destination.parent / made.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_leftovers(folder: Path) -> None:
    """Delete the temporary files and folders of a run that was killed before it could rename them."""
    for leftover in folder.glob(f".*{TEMPORARY_SUFFIX}"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def check_output_folder(folder: Path, option: str = "--out") -> None:
    """Refuse, before any work starts, a folder that is a file or cannot be created or written."""
    if folder.exists() and not folder.is_dir():
        raise InvalidOptionError(f"{option} {folder} is a file, not a folder; choose a folder for the outputs.")
    _check_writable(folder, option)


def check_output_file(path: Path, option: str) -> None:
    """Refuse, before any work starts, an output file path that is a folder or cannot be written."""
    if path.is_dir():
        raise InvalidOptionError(f"{option} {path} is a folder; give a file name, e.g. {path / 'metrics.json'}.")
    if not path.parent.is_dir():
        raise InvalidOptionError(f"{option} {path}: the folder {path.parent} does not exist; create it first.")
    _check_writable(path.parent, option)


def _check_writable(folder: Path, option: str) -> None:
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise InvalidOptionError(
            f"{option} {folder} cannot be written ({error.strerror} in {existing}); choose a folder you can write to."
        ) from None
