"""COCO RLE counts strings read without pycocotools, so that a mask sent by a client is checked
before it is decoded: pycocotools reads counts such as "" or "1" without a word, as a mask of
another size or of garbage, and what it made of them surfaces later as a wrong answer.

The string format is pycocotools' (maskApi.c rleToString): each run length in 5-bit groups,
least significant first, as characters from "0" (48); 0x20 marks that more groups follow, 0x10 in
the last group is the sign; from the fourth run on, each is stored as its difference to the run
two before it.
"""

from __future__ import annotations

import numpy as np

from lang_sam.errors import InvalidPromptError

MOST_GROUPS = 12  # 60 bits: far beyond any mask's run length, still inside int64


def rle_run_lengths(counts: str) -> np.ndarray:
    """The run lengths (int64) a COCO counts string holds; ValueError saying why when it holds none."""
    try:
        codes = np.frombuffer(counts.encode("ascii"), np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError:
        raise ValueError("it holds characters outside ASCII") from None
    if not len(codes):
        return np.zeros(0, np.int64)
    if codes.min() < 0 or codes.max() > 63:
        raise ValueError("it holds characters outside the counts alphabet ('0' to 'o')")
    ends = (codes & 0x20) == 0  # the last group of a number
    if not ends[-1]:
        raise ValueError("its last number is cut short")
    number = np.concatenate(([0], np.cumsum(ends)[:-1]))  # which number each character belongs to
    first = np.flatnonzero(np.concatenate(([True], ends[:-1])))
    group = np.arange(len(codes)) - first[number]
    if group.max() >= MOST_GROUPS:
        raise ValueError("a number in it is too long")
    values = np.zeros(int(ends.sum()), np.int64)
    np.add.at(values, number, (codes & 0x1F) << (5 * group))
    negative = (codes[ends] & 0x10) != 0
    values[negative] |= np.left_shift(np.int64(-1), 5 * (group[ends][negative] + 1))
    runs = values.copy()
    runs[3::2] = np.cumsum(values[1::2])[1:]  # stored as differences to the run two before
    runs[4::2] = np.cumsum(values[2::2])[1:]
    return runs


def check_rle_counts(counts: str, size: tuple[int, int], what: str = "mask") -> None:
    """Raise the InvalidPromptError that says why counts are not the runs of a size mask (H, W):
    unreadable, a negative run, or runs that do not add up to H x W pixels."""
    height, width = size
    try:
        runs = rle_run_lengths(counts)
    except ValueError as error:
        raise InvalidPromptError(f"The {what}'s RLE counts cannot be read ({error}); send the counts string "
                                 f"as the answers hold it.") from None
    if (runs < 0).any():
        raise InvalidPromptError(f"The {what}'s RLE counts hold a negative run; send the counts string as the answers hold it.")
    if int(runs.sum()) != height * width:
        raise InvalidPromptError(f"The {what}'s RLE counts add up to {int(runs.sum())} pixels, but its size "
                                 f"{height}x{width} has {height * width}; send the mask as the answers hold it.")
