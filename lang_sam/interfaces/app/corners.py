"""Boxes clicked on an image as two opposite corners, shared by the clicks tab (box prompts on an
object) and the more-like-this tab (SAM 3's exemplar boxes): the uploaded image decoded once for
all its clicks, corners paired into boxes, and their drawing."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lang_sam.io.images import load_image

LONE_CORNER = (255, 0, 255)  # the cross on a corner still waiting for its pair


@functools.lru_cache(maxsize=4)
def _decoded(path: str, modified: int) -> np.ndarray:
    image = load_image(path)
    image.flags.writeable = False  # shared by the clicks on this upload: nothing may draw on it
    return image


def decoded_image(path: str) -> np.ndarray:
    """The uploaded image, decoded once for all the clicks on it (read-only)."""
    return _decoded(path, Path(path).stat().st_mtime_ns)


def paired_boxes(corners: list[list[int]]) -> list[list[int]]:
    """Pixel xyxy boxes of corners [x, y, ...] taken two by two in click order (either diagonal,
    either way round); a lone last corner waits for its pair and makes no box."""
    return [[min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])] for a, b in zip(corners[::2], corners[1::2])]


def mark_lone_corner(drawing: np.ndarray, corners: list[list[int]]) -> np.ndarray:
    """(H, W, 3) drawing with the last corner marked (a small cross) when it still waits for its pair."""
    if len(corners) % 2 == 0:
        return drawing
    marked = drawing.copy()
    x, y = corners[-1][:2]
    height, width = marked.shape[:2]
    marked[max(0, y - 6) : y + 7, min(max(0, x), width - 1)] = LONE_CORNER
    marked[min(max(0, y), height - 1), max(0, x - 6) : x + 7] = LONE_CORNER
    return marked


def draw_boxes(drawing: np.ndarray, boxes: list[list[int]], colour: tuple[int, int, int]) -> np.ndarray:
    """(H, W, 3) drawing with the pixel xyxy boxes outlined in colour, 3 pixels wide (a new array)."""
    if not boxes:
        return drawing
    scene = Image.fromarray(np.ascontiguousarray(drawing))
    pen = ImageDraw.Draw(scene)
    for x0, y0, x1, y1 in boxes:
        pen.rectangle((x0, y0, x1, y1), outline=colour, width=3)
    return np.asarray(scene)
