"""SAM image embeddings on disk, shared between processes: the server's workers (a /decode may
reach another worker than the /embed before it) and fine-tuning (each image encoded once, reused
by later runs and by every DDP process)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from lang_sam.vocabulary import ImageEmbedding

DEFAULT_CAPACITY = 32  # the server's default; 4 MB each


class EmbeddingStore:
    """Embeddings by (model name, image id) in folder; the `capacity` most recently used are kept
    (None: all).

    Each is one safetensors file, written to a temporary name then renamed, so a worker never reads
    half of one; a file another worker evicts meanwhile reads as missing (the client embeds again).
    """

    def __init__(self, folder: str | Path, capacity: int | None = DEFAULT_CAPACITY) -> None:
        self.folder = Path(folder)
        self.capacity = None if capacity is None else max(1, capacity)

    def _path(self, sam_type: str, image_id: str) -> Path:
        name = hashlib.blake2b(f"{sam_type}\0{image_id}".encode(), digest_size=16).hexdigest()
        return self.folder / f"{name}.safetensors"

    def touch(self, sam_type: str, image_id: str) -> bool:
        """Whether the embedding is stored; if so it is marked as just used."""
        try:
            os.utime(self._path(sam_type, image_id))
        except FileNotFoundError:
            return False
        return True

    def put(self, sam_type: str, image_id: str, embedding: ImageEmbedding) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".embedding-", suffix=".part", dir=self.folder)
        os.close(handle)
        try:
            metadata = {"original_size": _text(embedding.original_size), "input_size": _text(embedding.input_size)}
            if isinstance(embedding.features, torch.Tensor):
                tensors = {"features": embedding.features}
            else:  # a transformers family's tuple, kept in order
                tensors = {f"features.{index}": tensor for index, tensor in enumerate(embedding.features)}
                metadata["levels"] = str(len(tensors))
            save_file({name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}, temporary, metadata=metadata)
            os.replace(temporary, self._path(sam_type, image_id))
        finally:
            Path(temporary).unlink(missing_ok=True)
        self._evict()

    def get(self, sam_type: str, image_id: str, device: torch.device | str = "cpu") -> ImageEmbedding | None:
        """The embedding, marked as just used; None when it was never stored or has been evicted."""
        path = self._path(sam_type, image_id)
        try:
            with safe_open(path, "pt", device=str(device)) as file:
                metadata = file.metadata()
                levels = metadata.get("levels")
                features = (file.get_tensor("features") if levels is None
                            else tuple(file.get_tensor(f"features.{index}") for index in range(int(levels))))
            os.utime(path)
        except (FileNotFoundError, SafetensorError):
            return None
        return ImageEmbedding(features, _size(metadata["original_size"]), _size(metadata["input_size"]))

    def _evict(self) -> None:
        if self.capacity is None:
            return
        entries = []
        for path in self.folder.glob("*.safetensors"):
            try:
                entries.append((path.stat().st_mtime_ns, path))
            except FileNotFoundError:  # evicted by another worker meanwhile
                continue
        for _, path in sorted(entries)[: max(0, len(entries) - self.capacity)]:
            path.unlink(missing_ok=True)


def _text(size: tuple[int, int]) -> str:
    return f"{size[0]},{size[1]}"


def _size(text: str) -> tuple[int, int]:
    height, width = text.split(",")
    return int(height), int(width)
