"""Finding SAM's official checkpoints, and downloading them safely when they are nowhere.

Search order: the explicit path; the folder named by ``LANG_SAM_CHECKPOINTS``; the torch hub cache
(``$TORCH_HOME/hub/checkpoints``, where segment-anything and lang-segment-anything v1 users keep
these files). Otherwise the file is downloaded from Meta with a progress bar into a temporary file
beside its destination, checked against its SHA256, and renamed into the cache only when whole
and correct: an interrupted or corrupt download never leaves a file that later loads as if good.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lang_sam.errors import CheckpointError, InvalidOptionError

CHECKPOINT_DIR_VARIABLE = "LANG_SAM_CHECKPOINTS"


@dataclass(frozen=True)
class OfficialCheckpoint:
    file_name: str
    url: str
    sha256: str


SAM_MODELS: dict[str, OfficialCheckpoint] = {
    "vit_h": OfficialCheckpoint(
        "sam_vit_h_4b8939.pth",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
    ),
    "vit_l": OfficialCheckpoint(
        "sam_vit_l_0b3195.pth",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
    ),
    "vit_b": OfficialCheckpoint(
        "sam_vit_b_01ec64.pth",
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    ),
}


def read_weights_file(path: str | Path, name: str, remedy: str):
    """torch.load(..., weights_only=True) of a weights file, with errors that say what to do.

    name says what the file should be ("SAM checkpoint"); remedy what to do about a bad one. Only
    tensors and plain containers are unpickled: a file holding anything else is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{name} {path} does not exist or is not a file. {remedy}")
    corrupt = CheckpointError(f"Could not read {name} {path}: the file is corrupt or truncated. {remedy}")
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since PyTorch 1.6
        raise corrupt
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"Refused to load {path}: it holds Python objects other than tensors, which could run code when "
            f"unpickled. {remedy}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError):
        raise corrupt from None


def torch_hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def check_sam_type(sam_type: str) -> None:
    """Raise InvalidOptionError unless sam_type is one of the official sizes."""
    if sam_type not in SAM_MODELS:
        raise InvalidOptionError(f"Unknown SAM type {sam_type!r}; choose one of {', '.join(SAM_MODELS)}.")


def find_sam_checkpoint(
    sam_type: str, checkpoint: str | Path | None = None, download: bool = True, checkpoint_dir: str | Path | None = None
) -> Path:
    """The path of sam_type's official checkpoint, downloading it into the torch hub cache if needed.

    Searched in order: checkpoint; checkpoint_dir, else the folder named by $LANG_SAM_CHECKPOINTS;
    the torch hub cache.
    """
    check_sam_type(sam_type)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CheckpointError(f"SAM checkpoint {path} does not exist or is not a file.")
        return path
    official = SAM_MODELS[sam_type]
    candidates = []
    folder = checkpoint_dir or os.environ.get(CHECKPOINT_DIR_VARIABLE)
    if folder:
        candidates.append(Path(folder).expanduser() / official.file_name)
    candidates.append(torch_hub_checkpoint_dir() / official.file_name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    destination = candidates[-1]
    if not download:
        raise CheckpointError(_missing_message(official, destination, "downloading is turned off"))
    return download_checkpoint(official, destination)


def download_checkpoint(official: OfficialCheckpoint, destination: Path) -> Path:
    """Download into a temporary file beside destination, check SHA256, then rename into place."""
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary_name = tempfile.mkstemp(prefix=f".{official.file_name}.", suffix=".part", dir=destination.parent)
    except OSError as error:
        raise CheckpointError(
            f"Cannot write into {destination.parent} to download {official.file_name} ({error.strerror}). "
            f"Set {CHECKPOINT_DIR_VARIABLE} to a writable folder, or download {official.url} yourself and pass its path."
        ) from None
    temporary = Path(temporary_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as output, urllib.request.urlopen(official.url, timeout=60) as response:
            expected_size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=expected_size, unit="B", unit_scale=True, desc=official.file_name) as progress:
                received = 0
                while chunk := response.read(1 << 20):
                    output.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
        if expected_size is not None and received != expected_size:
            raise CheckpointError(
                f"The download of {official.file_name} from {official.url} stopped after {received} of "
                f"{expected_size} bytes. Try again."
            )
        if digest.hexdigest() != official.sha256:
            raise CheckpointError(
                f"The download of {official.file_name} from {official.url} has SHA256 {digest.hexdigest()}, "
                f"expected {official.sha256}; it was discarded. Try again."
            )
        os.replace(temporary, destination)
        return destination
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise CheckpointError(_missing_message(official, destination, f"the download failed: {error}")) from None
    finally:
        temporary.unlink(missing_ok=True)


def _missing_message(official: OfficialCheckpoint, destination: Path, reason: str) -> str:
    return (
        f"SAM checkpoint {official.file_name} was not found and {reason}. Download {official.url} "
        f"and put it in {destination.parent} (or in the folder named by ${CHECKPOINT_DIR_VARIABLE}), "
        f"or pass its path as the checkpoint."
    )
