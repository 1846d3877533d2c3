"""The image folders of predict and everything: which images to read, the output names of each,
and NAME.png + NAME.json written atomically."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

from lang_sam.errors import InvalidOptionError
from lang_sam.io.files import check_output_folder, write_atomically
from lang_sam.io.images import find_images


def plan_outputs(args: argparse.Namespace) -> tuple[list[Path], dict[Path, str]]:
    """The images to process and the output stem of every image found; checks the output folder
    first. No images to process: ([], {}) when none were found (reported), ([], stems) when all
    are done already (--skip-existing)."""
    images = _collect_images(args.inputs, args.out)
    if not images:
        print("lang-sam: no images found in the given paths.", file=sys.stderr)
        return [], {}
    outputs = dict(zip(images, _output_names(images)))
    overwritten = sorted(
        str(path) for path in images for stem in [outputs[path]] for suffix in (".png", ".json")
        if (args.out / f"{stem}{suffix}").resolve() == path.resolve()
    )
    if overwritten:
        raise InvalidOptionError(f"Writing into {args.out} would overwrite the input {overwritten[0]}; choose another --out.")
    check_output_folder(args.out)
    if args.skip_existing:
        done = [path for path in images if all((args.out / f"{outputs[path]}{s}").is_file() for s in (".png", ".json"))]
        if done:
            print(f"lang-sam: {len(done)} of {len(images)} images already have outputs; skipped.", file=sys.stderr)
        images = [path for path in images if path not in set(done)]
    return images, outputs


def write_outputs(stem: Path, drawing, payload: dict) -> None:
    """STEM.png, then STEM.json (written last: its presence marks the image done), each atomically."""
    write_atomically(stem.with_name(f"{stem.name}.png"), lambda file: Image.fromarray(drawing).save(file, format="PNG"))
    write_atomically(stem.with_name(f"{stem.name}.json"), lambda file: file.write(json.dumps(payload, indent=1).encode()))


def _collect_images(inputs: list[Path], out: Path) -> list[Path]:
    """The files given, and the images under the folders given (subfolders too, as label reads
    them), leaving out what lies in the output folder: a rerun never reads its own drawings."""
    images: list[Path] = []
    for path in inputs:
        if path.is_dir():
            images.extend(p for p in find_images(path) if out.resolve() not in p.resolve().parents)
        else:
            images.append(path)  # a missing or unreadable file is reported when it is read
    return images


def _output_names(images: list[Path]) -> list[str]:
    """Output stems: the image's stem, with its extension and then a number added when two inputs
    would share it (photos/a.jpg, photos/a.png, other/a.jpg -> a.jpg, a.png, a.jpg-2)."""
    stems = [path.stem for path in images]
    names: list[str] = []
    for path, stem in zip(images, stems):
        name = stem if stems.count(stem) == 1 else path.name
        candidate, number = name, 2
        while candidate in names:
            candidate, number = f"{name}-{number}", number + 1
        names.append(candidate)
    return names
