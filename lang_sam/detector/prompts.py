"""Text prompts: the class names a user asks for, and the caption Grounding DINO reads.

"car, wheel", "car. wheel.", "Car . WHEEL", " car,,wheel ," and "car\\nwheel" all mean the classes
["car", "wheel"]. The caption joins classes with " . " so that each class owns its own token span,
and the model's token scores can be read back per class.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from lang_sam.errors import InvalidPromptError

_SEPARATORS = re.compile(r"[,.\n\r]+")


def normalize_class_name(name: str) -> str:
    """A class name as the detector uses it: control characters read as spaces, whitespace
    collapsed, stripped, lowercased ("  Cat\t" -> "cat")."""
    cleaned = "".join(" " if unicodedata.category(char).startswith("C") else char for char in name)
    return " ".join(cleaned.split()).lower()


def parse_classes(prompt: str | Sequence[str]) -> list[str]:
    """The class names of a prompt: a string is split on commas, periods and newlines; a list of
    names is taken as it is (so a name may hold a period: ["st. bernard", "cat"]). Names are
    normalized (normalize_class_name), empties and duplicates dropped, order kept."""
    if isinstance(prompt, str):
        parts = _SEPARATORS.split(prompt)  # control characters other than newlines become spaces below
    elif isinstance(prompt, (list, tuple)) and all(isinstance(name, str) for name in prompt):
        parts = list(prompt)
    else:
        raise InvalidPromptError(
            f"The prompt must be a string such as 'car, wheel' or a list of class names, got {type(prompt).__name__}."
        )
    classes: list[str] = []
    for part in parts:
        name = normalize_class_name(part)
        if name and name not in classes:
            classes.append(name)
    if not any(char.isalpha() for name in classes for char in name):
        raise InvalidPromptError(
            f"The prompt {prompt!r} names no class: give one or more names separated by commas, e.g. 'car, wheel'."
        )
    return classes


@dataclass(frozen=True)
class Caption:
    """A caption for the model and, per class, the [start, end) token span it occupies."""

    text: str
    classes: list[str]
    token_spans: list[tuple[int, int]]


def build_caption(classes: list[str], tokenizer) -> Caption:
    """Join classes as "a . b ." and find each class's token span with the tokenizer's offsets."""
    text = "".join(f"{name} . " for name in classes).strip()
    char_spans = []
    position = 0
    for name in classes:
        char_spans.append((position, position + len(name)))
        position += len(name) + 3
    offsets = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)["offset_mapping"]
    token_spans = []
    for (char_start, char_end), name in zip(char_spans, classes):
        tokens = [index for index, (start, end) in enumerate(offsets) if end > start and start >= char_start and end <= char_end]
        if not tokens:
            raise InvalidPromptError(f"The class {name!r} produced no tokens for the text encoder; rephrase it.")
        token_spans.append((tokens[0], tokens[-1] + 1))
    return Caption(text=text, classes=list(classes), token_spans=token_spans)


def split_into_captions(classes: list[str], tokenizer, max_tokens: int) -> list[Caption]:
    """Captions of whole classes, each within max_tokens (special tokens included), in order.

    A prompt longer than the text encoder takes is run caption by caption, so no class is dropped.
    Word-piece tokenizers split on spaces and punctuation, so a caption's length is the sum of its
    classes' lengths, one "." each, and the two special tokens.
    """
    groups: list[list[str]] = [[]]
    used = 2  # [CLS] and [SEP]
    for name in classes:
        length = len(tokenizer(name, add_special_tokens=False)["input_ids"]) + 1
        if 2 + length > max_tokens:
            raise InvalidPromptError(
                f"The class {name[:60]!r} alone is longer than the text encoder's {max_tokens} tokens; shorten it."
            )
        if used + length > max_tokens:
            groups.append([])
            used = 2
        groups[-1].append(name)
        used += length
    return [build_caption(group, tokenizer) for group in groups]
