"""Convert SAM checkpoints between Meta's layout (a .pth or .safetensors state dict) and transformers'
(a folder that SamModel.from_pretrained loads), never leaving a half-written output.

The input is read and checked as build_sam reads it (strict keys and shapes, safe loaders); the
output is written beside its destination under a temporary name and renamed into place whole.

Meta's layout has no config, so one setting cannot survive the way to it: the eps of the mask
decoder's two-way transformer norms (config.json's mask_decoder_config.layer_norm_eps; 1e-6 in
SamConfig() and the facebook/sam-vit-* configs). A Meta file always loads with Meta's 1e-5, so a
folder with another eps converted to Meta's layout computes slightly differently (by up to ~2e-4 in
low-res logits on a random vit_b for 1e-6); the conversion is still written, with an
EpsNotKeptWarning saying so. Meta's files converted to transformers' layout say 1e-5.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from lang_sam.errors import InvalidOptionError
from lang_sam.io.files import check_output_folder, write_atomically, write_folder_atomically
from lang_sam.io.weights import HF_CONFIG_FILE, HF_WEIGHTS_FILE, local_sam_checkpoint
from lang_sam.registry import META_DECODER_LAYER_NORM_EPS, SAM_MODELS, SamArchitecture
from lang_sam.segmenter.build import read_sam_checkpoint
from lang_sam.segmenter.hf_format import meta_to_hf

LAYOUTS = ("hf", "meta")
HF_FOLDER_FILES = (HF_CONFIG_FILE, HF_WEIGHTS_FILE, "preprocessor_config.json")  # what _write_hf_folder writes
META_SUFFIXES = (".pth", ".safetensors")


class EpsNotKeptWarning(UserWarning):
    """A conversion to Meta's layout of a SAM whose two-way transformer normalises with another eps
    than Meta's 1e-5: the file written loads with 1e-5."""


def convert_checkpoint(
    source: str | Path, output: str | Path, to: str | None = None, sam_type: str | None = None, overwrite: bool = False
) -> Path:
    """Write the SAM in source (Meta's file, a transformers folder or a Hugging Face repo id) to
    output in the other layout, or the one named by to: "hf" (a folder: config.json,
    model.safetensors, preprocessor_config.json) or "meta" (output ending in .pth or .safetensors).

    sam_type, an official size, is the size source must hold. An existing output is refused unless
    overwrite; the tensors are copied unchanged (same names in Meta's layout, dtypes and values).
    A folder whose mask_decoder_config.layer_norm_eps is not Meta's 1e-5 (SamConfig's default is
    1e-6) converted to "meta" is written all the same, with an EpsNotKeptWarning: Meta's layout
    cannot hold the eps, so the file loads with 1e-5 (see the module's docstring).
    """
    path = local_sam_checkpoint(source)
    to = to or ("meta" if path.is_dir() else "hf")
    output = Path(output).expanduser()
    _check_options(path, output, to, sam_type, overwrite)
    state_dict, architecture = read_sam_checkpoint(path, sam_type)
    if to == "hf":
        save_hf_folder(state_dict, architecture, output)
    elif output.suffix == ".safetensors":
        from safetensors.torch import save

        tensors = {name: tensor.contiguous() for name, tensor in state_dict.items()}
        write_atomically(output, lambda file: file.write(save(tensors)))
    else:
        write_atomically(output, lambda file: torch.save(state_dict, file))
    eps = architecture.decoder_layer_norm_eps
    if to == "meta" and eps != META_DECODER_LAYER_NORM_EPS:
        warnings.warn(
            f"{source} normalises its mask decoder's two-way transformer with layer_norm_eps {eps:g}, but Meta's "
            f"layout has no config: {output} loads with Meta's {META_DECODER_LAYER_NORM_EPS:g}, so its masks differ "
            "slightly from the input's (for 1e-6, by up to ~2e-4 in low-res logits). Keep the transformers folder "
            "to compute exactly what it computes.",
            EpsNotKeptWarning, stacklevel=2,
        )
    return output


def save_hf_folder(state_dict: dict[str, torch.Tensor], architecture: SamArchitecture, output: Path) -> None:
    """A SAM state dict in Meta's layout written as a transformers folder (SamModel.from_pretrained
    loads it), whole or not at all; an existing folder at output is replaced."""
    hf_state_dict, config = meta_to_hf(state_dict, architecture)
    write_folder_atomically(Path(output), lambda folder: _write_hf_folder(folder, hf_state_dict, config))


def _check_options(source: Path, output: Path, to: str, sam_type: str | None, overwrite: bool) -> None:
    """Refuse, before anything is read, a conversion that could not end well or would replace a file unasked."""
    if to not in LAYOUTS:
        raise InvalidOptionError(f"Unknown layout {to!r}: convert --to hf (a transformers folder) or meta (a .pth file).")
    if sam_type is not None and sam_type not in SAM_MODELS:
        raise InvalidOptionError(f"--sam-type {sam_type!r} is not an official size; choose one of {', '.join(SAM_MODELS)}.")
    if to == "meta" and output.suffix not in META_SUFFIXES:
        raise InvalidOptionError(
            f"{output}: Meta's layout is a file ending in {' or '.join(META_SUFFIXES)}; name the output so."
        )
    if output.resolve() == source.resolve():
        raise InvalidOptionError(f"{output} is the input itself; write the conversion to another path.")
    if output.exists() or output.is_symlink():
        if not overwrite:
            raise InvalidOptionError(f"{output} already exists; pass --overwrite to replace it, or choose another path.")
        if output.is_dir() != (to == "hf"):
            kind = "folder" if output.is_dir() else "file"
            raise InvalidOptionError(
                f"{output} is a {kind}; the conversion is a {'folder' if to == 'hf' else 'file'}, so it is not replaced. "
                "Choose another path."
            )
        if output.is_dir():
            if output.resolve() in source.resolve().parents:
                raise InvalidOptionError(f"{source} is inside {output}: replacing the folder would delete the input. "
                                         "Write the conversion to another path.")
            _check_replaceable_folder(output)
    if not output.parent.is_dir():
        raise InvalidOptionError(f"{output}: the folder {output.parent} does not exist; create it first.")
    check_output_folder(output.parent, "--out")


def _check_replaceable_folder(folder: Path) -> None:
    """--overwrite replaces a folder only when it holds nothing but what a conversion writes: anything
    else in it is the user's, and would be deleted with the folder."""
    others = sorted(entry.name for entry in folder.iterdir() if entry.name not in HF_FOLDER_FILES or not entry.is_file())
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise InvalidOptionError(
            f"{folder} holds {shown}, which a conversion does not write: --overwrite replaces only a model folder "
            f"({', '.join(HF_FOLDER_FILES)}), so nothing of yours is deleted. Choose another path, or move those out."
        )


def _write_hf_folder(folder: Path, hf_state_dict: dict[str, torch.Tensor], config: dict) -> None:
    """config.json, model.safetensors (with the metadata transformers looks for) and the image
    processor SamProcessor loads (SamImageProcessor's defaults are Meta's preprocessing)."""
    from safetensors.torch import save_file
    from transformers import SamImageProcessor

    tensors = {name: tensor.contiguous() for name, tensor in hf_state_dict.items()}
    save_file(tensors, folder / HF_WEIGHTS_FILE, metadata={"format": "pt"})
    (folder / HF_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    SamImageProcessor().save_pretrained(folder)
