"""Clicks and boxes written as text, as the CLI flags and the server's multipart fields take them:
points "x,y;x,y", boxes "x1,y1,x2,y2;x1,y1,x2,y2", point labels "1,0"."""

from __future__ import annotations

from lang_sam.errors import InvalidPromptError

EXAMPLES = {2: "10,20;30,40", 4: "10,20,110,220"}


def parse_coordinates(text: str, per_item: int, name: str) -> list[list[float]]:
    """Items separated by ';', each per_item numbers separated by ','."""
    try:
        items = [[float(v) for v in item.split(",")] for item in text.split(";") if item.strip()]
    except ValueError:
        raise InvalidPromptError(f"{name} takes numbers, e.g. {EXAMPLES.get(per_item, '')}; got {text!r}.") from None
    if not items or any(len(item) != per_item for item in items):
        raise InvalidPromptError(f"{name} takes {per_item} numbers per item, separated by ';'; got {text!r}.")
    return items


def parse_point_labels(text: str, name: str) -> list[int]:
    """Labels separated by ',': 1 object, 0 background."""
    labels = [label.strip() for label in text.split(",")]
    if not all(label in ("0", "1") for label in labels):
        raise InvalidPromptError(f'{name} are 1 (object) or 0 (background), e.g. "1,0"; got {text!r}.')
    return [int(label) for label in labels]
