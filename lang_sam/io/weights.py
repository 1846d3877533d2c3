"""Finding SAM checkpoints by name, and downloading official ones safely when they are nowhere.

Search order for an official size: the explicit path; the folder named by ``LANG_SAM_CHECKPOINTS``; the torch hub cache
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
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from tqdm.auto import tqdm

from lang_sam.errors import CheckpointError, ModelLoadError
from lang_sam.registry import (
    CHECKPOINT_DIR_VARIABLE,
    SAM_MODELS,
    OfficialSam,
    check_sam_type,
    is_hub_repo_id,
    local_sam_checkpoints,
)
from lang_sam.registry import checkpoint_dir as resolve_checkpoint_dir

Loaded = TypeVar("Loaded")


HF_CONFIG_FILE = "config.json"
HF_WEIGHTS_FILE = "model.safetensors"
# A Hugging Face repo id ("facebook/sam-vit-base"): what a checkpoint that is no local path may be.


def read_weights_file(path: str | Path, name: str, remedy: str):
    """The tensors of a weights file, with errors that say what to do: a .safetensors file through
    safetensors, anything else through torch.load(..., weights_only=True).

    name says what the file should be ("SAM checkpoint"); remedy what to do about a bad one. Only
    tensors and plain containers are unpickled: a file holding anything else is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{name} {path} does not exist or is not a file. {remedy}")
    corrupt = CheckpointError(f"Could not read {name} {path}: the file is corrupt or truncated. {remedy}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError):
            raise corrupt from None
    if not zipfile.is_zipfile(path) and not _starts_as_pickle(path):  # torch.save has written zips since PyTorch 1.6
        raise corrupt
    try:
        with warnings.catch_warnings():  # a plain pickle's protocol draws torch's "please file an issue"
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        plain = "" if zipfile.is_zipfile(path) else "it is a plain pickle, not a file torch.save wrote, or "
        raise CheckpointError(
            f"Refused to load {path}: {plain}it holds Python objects other than tensors, which could run code when "
            f"unpickled. {remedy}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError):
        raise corrupt from None


def _starts_as_pickle(path: Path) -> bool:
    """Whether the file opens as a pickle of protocol 2 or later does (PROTO, then 2-5): a plain
    pickle or torch.save's pre-1.6 format, which torch.load(weights_only=True) reads without running
    anything, so that one holding code is reported as refused, not as corrupt."""
    with path.open("rb") as file:
        head = file.read(2)
    return len(head) == 2 and head[0] == pickle.PROTO[0] and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL


def local_sam_checkpoint(checkpoint: str | Path) -> Path:
    """The local path of a SAM checkpoint: the path itself, or for a Hugging Face repo id its
    folder in the Hugging Face cache (downloaded there once unless HF_HUB_OFFLINE=1)."""
    if not is_hub_repo_id(checkpoint):
        return Path(checkpoint).expanduser()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(checkpoint), allow_patterns=[HF_CONFIG_FILE, HF_WEIGHTS_FILE]))
    except Exception as error:  # noqa: BLE001 - offline, missing, gated, refused: all mean "not here"
        raise CheckpointError(missing_hub_model_message("SAM", str(checkpoint), error)) from None


def sam_weights_file(checkpoint: Path) -> Path:
    """The file that holds a SAM checkpoint's weights: the file itself, or a folder's model.safetensors."""
    return checkpoint / HF_WEIGHTS_FILE if checkpoint.is_dir() else checkpoint


def file_sha256(path: str | Path) -> str:
    """The SHA256 of a file, read in 1 MiB pieces (a vit_h file takes a few seconds)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while piece := file.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def torch_hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_sam_checkpoint(
    sam_type: str | None, checkpoint: str | Path | None = None, download: bool = True, checkpoint_dir: str | Path | None = None
) -> Path:
    """The path of the SAM named sam_type (see lang_sam.registry), downloading an official one into
    the torch hub cache if needed.

    checkpoint, when given, is the answer (sam_type may then be None): a file, a transformers SAM
    folder, or a Hugging Face repo id (its folder in the Hugging Face cache). Otherwise an official
    size is searched in checkpoint_dir (else $LANG_SAM_CHECKPOINTS), then the torch hub cache; any
    other name is NAME.pth in that folder.
    """
    if checkpoint is not None:
        path = local_sam_checkpoint(checkpoint)
        if not path.exists():
            raise CheckpointError(
                f"SAM checkpoint {path} does not exist: give a .pth or .safetensors file, a transformers SAM "
                "folder, or a Hugging Face repo id such as facebook/sam-vit-base."
            )
        return path
    check_sam_type(sam_type, checkpoint_dir)
    if sam_type not in SAM_MODELS:
        return local_sam_checkpoints(checkpoint_dir)[sam_type]
    official = SAM_MODELS[sam_type]
    candidates = []
    folder = resolve_checkpoint_dir(checkpoint_dir)
    if folder:
        candidates.append(folder / official.file_name)
    candidates.append(torch_hub_checkpoint_dir() / official.file_name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    destination = candidates[-1]
    if not download:
        raise CheckpointError(_missing_message(official, destination, "downloading is turned off"))
    return download_checkpoint(official, destination)


def download_checkpoint(official: OfficialSam, destination: Path) -> Path:
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


def _missing_message(official: OfficialSam, destination: Path, reason: str) -> str:
    return (
        f"SAM checkpoint {official.file_name} was not found and {reason}. Download {official.url} "
        f"and put it in {destination.parent} (or in the folder named by ${CHECKPOINT_DIR_VARIABLE}), "
        f"or pass its path as the checkpoint."
    )


def load_pretrained_checked(load: Callable[[str], Loaded], source: str, kind: str) -> Loaded:
    """load(source) (a transformers from_pretrained), with the errors users can act on: not found
    (offline, not cached, gated) and pickled weights holding more than tensors (refused: unpickling
    could run code). kind names the model in messages ("OWLv2", "SAM 2.1 / SAM-HQ")."""
    try:
        return load(source)
    except OSError as error:
        raise ModelLoadError(missing_hub_model_message(kind, source, error)) from None
    except ImportError as error:  # a model whose parts come from another package (EdgeTAM's backbone: timm)
        raise ModelLoadError(f"The {kind} model {source} needs a package that is not installed: {_first_line(error)}") from None
    except RuntimeError as error:
        if "mismatch" not in str(error):
            raise
        raise ModelLoadError(f"The {kind} model {source}'s config.json does not describe its weights (their shapes differ "
                             f"from the model it builds): give the config.json saved with these weights. "
                             f"[{_first_line(error)}]") from None
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"Refused to load the {kind} model {source}: its weights file holds Python objects other than tensors, "
            "which could run code when unpickled. Use a copy saved with safetensors (model.safetensors, what "
            "save_pretrained writes by default)."
        ) from None


def missing_hub_model_message(kind: str, source: str, error: Exception) -> str:
    """What to do when a transformers model (kind: "Grounding DINO", "Mask2Former", ...) is neither a
    local folder nor in the Hugging Face cache, and cannot be downloaded: for a gated repo (SAM 3)
    whose licence this account has not accepted or that was asked for without a token, how to get
    access; otherwise how to get a copy."""
    from huggingface_hub import constants

    if hub_access_refused(error):
        return (
            f"Could not load the {kind} model {source!r}: it is gated on the Hugging Face hub and downloads only "
            f"for a logged-in account that has accepted its licence. Accept the licence at "
            f"https://huggingface.co/{source} (log in there and request access), then run `hf auth login` or set "
            f"HF_TOKEN to an access token of that account, and try again. Or pass the path of a local copy saved "
            f"with save_pretrained. [{_first_line(error)}]"
        )
    return (
        f"Could not load the {kind} model {source!r}: it is not a local folder and not in the Hugging Face "
        f"cache ({constants.HF_HUB_CACHE}), and it could not be downloaded (no network, or HF_HUB_OFFLINE=1). "
        f"Run once with network to cache it, set HF_HOME to a cache that holds it, or pass the path of a local "
        f"copy saved with save_pretrained (a folder with config.json, the weights and the processor files). "
        f"[{_first_line(error)}]"
    )


def hub_access_refused(error: BaseException) -> bool:
    """Whether the Hugging Face hub refused a download for want of a token or an accepted licence,
    anywhere in the error's chain (transformers wraps the hub's error in an OSError): a
    GatedRepoError (401 without a token, 403 before the licence is accepted) or any 403."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, GatedRepoError):
            return True
        if isinstance(cause, HfHubHTTPError) and cause.response is not None and cause.response.status_code == 403:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _first_line(error: BaseException) -> str:
    """The error's type and the first line of its message, to end a message of ours with."""
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def config_model_type(source: str, kind: str) -> str:
    """config.json's model_type of a local folder or hub repo, read without loading any weights, so
    that a loader can pick the model class (or say what else the folder holds). kind names the
    model in errors ("Grounding DINO", "OWLv2", "detector")."""
    from transformers import PreTrainedConfig

    try:
        config, _ = PreTrainedConfig.get_config_dict(source)
    except OSError as error:
        raise ModelLoadError(missing_hub_model_message(kind, source, error)) from None
    if not config.get("model_type"):
        raise ModelLoadError(
            f"{source} has no config.json naming a model_type, so it is not a {kind} model in transformers "
            "format: give a folder written by save_pretrained (config.json, weights, processor files) or a hub repo id."
        )
    return config["model_type"]


def load_processor(source: str, kind: str):
    """The image processor and tokenizer saved in a folder or repo (a model's, or one of its own)."""
    from transformers import AutoProcessor

    return load_pretrained_checked(AutoProcessor.from_pretrained, source, kind)
