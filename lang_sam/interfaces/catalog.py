"""``lang-sam models``: every registry entry as a table a user chooses from (name, family, kind,
size, licence, gated, and whether its weights are already on this machine). Nothing is downloaded:
caches are only looked at."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from lang_sam.registry import (
    DETECTORS, FAMILY_MODELS, SAM_MODELS, UNIVERSAL_MODELS, checkpoint_dir, local_sam_checkpoints,
)


@dataclass(frozen=True)
class ModelRow:
    """One model as ``lang-sam models`` lists it; parameters: the published count, or the count
    in the weights file once it is on this machine (None when neither is known)."""

    name: str
    family: str
    kind: str
    parameters: int | None
    licence: str
    gated: bool
    cached: bool
    source: str


def model_rows(folder: str | Path | None = None) -> list[ModelRow]:
    """The registry's segmenters (SAM v1 first), detectors and universal models, then the
    checkpoint folder's own models."""
    from lang_sam.io.weights import torch_hub_checkpoint_dir

    rows = []
    where = checkpoint_dir(folder)
    for name, official in SAM_MODELS.items():
        files = [torch_hub_checkpoint_dir() / official.file_name] + ([where / official.file_name] if where else [])
        rows.append(ModelRow(name, "sam", "segmenter", official.parameters, official.licence, False,
                             any(path.is_file() for path in files), official.url))
    for name, entry in FAMILY_MODELS.items():
        kind = "text segmenter" if entry.segments_text else "segmenter"
        rows.append(_hub_row(name, entry.family, kind, entry.repo_id, entry.parameters, entry.licence, entry.gated))
    for name, entry in DETECTORS.items():
        rows.append(_hub_row(name, entry.family, "detector", entry.repo_id, entry.parameters, entry.licence, False,
                             entry.file_name or "config.json"))
    for name, entry in UNIVERSAL_MODELS.items():
        rows.append(_hub_row(name, entry.family, "universal", entry.repo_id, entry.parameters, entry.licence, False))
    for name, path in local_sam_checkpoints(folder).items():
        rows.append(ModelRow(name, "own", "segmenter", _weights_parameters(path), "yours", False, True, str(path)))
    return rows


def _hub_row(name: str, family: str, kind: str, repo_id: str, parameters: int | None, licence: str, gated: bool,
             file_name: str = "config.json") -> ModelRow:
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, file_name)
    weights = Path(cached).parent / "model.safetensors" if isinstance(cached, str) else None
    counted = _weights_parameters(weights) if weights is not None and weights.is_file() else None
    return ModelRow(name, family, kind, counted or parameters, licence, gated, isinstance(cached, str), repo_id)


def _weights_parameters(path: Path) -> int | None:
    """The number of weights in a safetensors file or folder, read from its header alone."""
    from safetensors import SafetensorError, safe_open

    file = path / "model.safetensors" if path.is_dir() else path
    if file.suffix != ".safetensors" or not file.is_file():
        return None
    try:
        with safe_open(file, "pt") as weights:
            return sum(_numel(weights.get_slice(name).get_shape()) for name in weights.keys())
    except (OSError, SafetensorError):
        return None


def _numel(shape: list[int]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def format_rows(rows: list[ModelRow]) -> str:
    """The rows as an aligned text table."""
    header = ("name", "family", "kind", "parameters", "licence", "gated", "cached", "source")
    lines = [header] + [
        (row.name, row.family, row.kind, "?" if row.parameters is None else f"{row.parameters / 1e6:.0f}M", row.licence,
         "yes" if row.gated else "no", "yes" if row.cached else "no", row.source)
        for row in rows
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1] for line in lines)


def rows_as_json(rows: list[ModelRow]) -> list[dict]:
    return [asdict(row) for row in rows]
