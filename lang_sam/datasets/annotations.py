"""Checks of a COCO dataset's object annotations before their masks are used.

pycocotools meets a bad annotation late: as a traceback when it rasterises a polygon of fewer than
three points or a segmentation of the wrong type, or not at all when RLE counts do not decode or
describe an image of another size (the mask comes out wrong, and training fails later on its
shape). Checking every annotation first lets a tool report all of them at once, by id, before any
work starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

NO_ID = "have no id"
NO_IMAGE = "name an image_id that is not in images"
UNSIZED_IMAGE = "are on images without a height and width in pixels (COCO's images list them)"
NO_MASK = "have no mask (give each a segmentation, polygons or RLE, e.g. from lang-sam label)"
SHORT_POLYGON = "have a polygon of fewer than 3 points (6 numbers) or an odd count of numbers"
POLYGON_VALUES = "have a polygon whose values are not numbers"
UNKNOWN_SEGMENTATION = ('have a segmentation that is neither a list of polygons nor an RLE object '
                        '({"size": [height, width], "counts": ...})')
RLE_SIZE = "have an RLE whose size is not its image's [height, width]"
RLE_COUNTS = "have RLE counts that do not decode to the image's height x width pixels"

_MAX_SHIFT = 60  # pycocotools keeps a run in a 64-bit long: a longer number is not an RLE it wrote


def annotation_problems(dataset: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each problem (the module's constants, in that order) with the annotations that have it: their
    id, or annotations[POSITION] when they have none. Crowd regions are not checked: they are not
    objects. dataset: a COCO instances dict whose layout check_coco_dataset accepted."""
    images = {image["id"]: image for image in dataset["images"]}
    found: dict[str, list[str]] = {}
    for position, annotation in enumerate(dataset["annotations"]):
        if annotation.get("iscrowd"):
            continue
        name = str(annotation["id"]) if "id" in annotation else f"annotations[{position}]"
        for problem in _problems_of(annotation, images):
            found.setdefault(problem, []).append(name)
    order = [NO_ID, NO_IMAGE, UNSIZED_IMAGE, NO_MASK, SHORT_POLYGON, POLYGON_VALUES, UNKNOWN_SEGMENTATION, RLE_SIZE, RLE_COUNTS]
    return {problem: found[problem] for problem in order if problem in found}


def _problems_of(annotation: Mapping[str, Any], images: Mapping[Any, Mapping[str, Any]]) -> list[str]:
    problems = [] if "id" in annotation else [NO_ID]
    image = images.get(annotation["image_id"])
    if image is None:
        return [*problems, NO_IMAGE]
    size = image_size(image)
    if size is None:
        return [*problems, UNSIZED_IMAGE]
    problem = segmentation_problem(annotation.get("segmentation"), *size)
    return problems if problem is None else [*problems, problem]


def image_size(image: Mapping[str, Any]) -> tuple[int, int] | None:
    """(height, width) of a COCO image entry, or None unless both are whole numbers >= 1."""
    height, width = image.get("height"), image.get("width")
    return (height, width) if _is_count(height, 1) and _is_count(width, 1) else None


def segmentation_problem(segmentation: object, height: int, width: int) -> str | None:
    """What keeps segmentation from being a mask of an image of height x width (one of the
    module's constants), or None: polygons [[x, y, x, y, ...], ...] or an RLE whose counts are a
    pycocotools string or a list of run lengths."""
    if not segmentation:
        return NO_MASK
    if isinstance(segmentation, list):
        return _polygons_problem(segmentation)
    if isinstance(segmentation, Mapping) and {"size", "counts"} <= segmentation.keys():
        return _rle_problem(segmentation, height, width)
    return UNKNOWN_SEGMENTATION


def _polygons_problem(polygons: list) -> str | None:
    for polygon in polygons:
        if not isinstance(polygon, list):
            return UNKNOWN_SEGMENTATION
        if not all(_is_finite_number(value) for value in polygon):
            return POLYGON_VALUES
        if len(polygon) < 6 or len(polygon) % 2:
            return SHORT_POLYGON
    return None


def _rle_problem(rle: Mapping[str, Any], height: int, width: int) -> str | None:
    size = rle["size"]
    if not isinstance(size, (list, tuple)) or list(size) != [height, width]:
        return RLE_SIZE
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        runs = rle_run_lengths(counts)
    elif isinstance(counts, list) and all(_is_count(run, 0) for run in counts):
        runs = counts
    else:
        runs = None
    return None if runs is not None and sum(runs) == height * width else RLE_COUNTS


def rle_run_lengths(counts: str | bytes) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string (pycocotools' rleFrString: 5 bits a character
    from '0', a continuation bit, the sign of the last one, each run from the fourth on stored as the
    difference to the one two before), or None when counts is not such a string: a character out of
    range, a number left unfinished or too long, a negative run."""
    try:
        text = counts.decode("ascii") if isinstance(counts, bytes) else counts
    except UnicodeDecodeError:
        return None
    runs: list[int] = []
    value = shift = 0
    for character in text:
        code = ord(character) - 48
        if not 0 <= code < 64 or shift > _MAX_SHIFT:
            return None
        value |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:  # more to come
            continue
        if code & 0x10:  # negative
            value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            return None
        runs.append(value)
        value = shift = 0
    return None if shift else runs


def _is_count(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
