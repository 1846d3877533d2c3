"""The embeddings a pipeline keeps, with the segmenter that made them, so that a new prompt on a
recent image skips the image encoder."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lang_sam.families.base import Segmenter, TextSegmenter


class EmbeddingCache:
    """The SAM embeddings of the last few images, by image key; safe to share between threads.

    The lock guards only lookups and inserts, never an encode: two threads asking for the same new
    image encode it once (the second waits for the first), threads asking for different images
    encode them at the same time, and an encode that fails leaves nothing behind.
    """

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = max(1, capacity)
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._encoding: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get_or_encode(self, key: str, encode: Callable[[], Any]) -> Any:
        """The cached embedding of key, or encode()'s, which is then cached (least recently used out)."""
        while True:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key]
                in_progress = self._encoding.get(key)
                if in_progress is None:
                    done = self._encoding[key] = threading.Event()
            if in_progress is None:
                break
            in_progress.wait()  # then look again: cached, or the other encode failed and this one tries
        try:
            embedding = encode()
            with self._lock:
                self._entries[key] = embedding
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            return embedding
        finally:
            with self._lock:
                del self._encoding[key]
            done.set()


@dataclass(frozen=True)
class LoadedSam:
    """One segmenter with its own embedding cache. set_sam swaps the whole object, so a call that
    started on one model finishes on it."""

    model: Segmenter | TextSegmenter
    embeddings: EmbeddingCache

    @property
    def segments_text(self) -> bool:
        return isinstance(self.model, TextSegmenter)

