"""Detections to tracks, one frame at a time, by mask IoU: pure functions, no model.

A track is an object seen in earlier frames: its id, its label and the last mask it had. Each
frame, associate() pairs the frame's detections with the live tracks (one detection per track at
most, same label only, mask IoU at least iou_threshold, the pairing of largest total IoU), starts
a track for each detection left over and counts, for every track, the frames since it was last
seen; a track unseen for max_lost frames in a row ends. Ids only grow: an ended track's id is
never given again, so an object that comes back after a long absence gets a new one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from lang_sam.errors import InvalidOptionError
from lang_sam.vocabulary import check_max_lost


@dataclass(frozen=True)
class Track:
    """A live track: id (unique in a video), label (one of the user's classes), score (the
    detector's score when a detection last started or matched it), mask ((H, W) bool, the last
    mask it had) and lost (frames in a row it has not been seen; 0 when seen this frame)."""

    id: int
    label: str
    score: float
    mask: np.ndarray
    lost: int = 0


@dataclass(frozen=True)
class Association:
    """What associate() decided for one frame.

    tracks: the live tracks after this frame, by increasing id; matched: (track id, detection
    index) pairs; started: (new track id, detection index) pairs; ended: ids of the tracks that
    ended this frame; next_id: the id the next new track takes.
    """

    tracks: tuple[Track, ...]
    matched: tuple[tuple[int, int], ...]
    started: tuple[tuple[int, int], ...]
    ended: tuple[int, ...]
    next_id: int


def mask_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(A, B) IoU of every mask in first (A, H, W) with every mask in second (B, H, W); two empty
    masks have IoU 0."""
    a = first.reshape(len(first), -1).astype(np.float32)
    b = second.reshape(len(second), -1).astype(np.float32)
    intersection = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def check_association_options(iou_threshold: float, max_lost: int) -> None:
    """Refuse an iou_threshold outside (0, 1] or a max_lost below 1, saying what they mean."""
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) or not 0.0 < iou_threshold <= 1.0:
        raise InvalidOptionError(f"iou_threshold must be in (0, 1] (the mask IoU at which a detection continues a track), "
                                 f"got {iou_threshold!r}.")
    check_max_lost(max_lost)


def associate(
    tracks: Sequence[Track],
    masks: np.ndarray,
    labels: Sequence[str],
    scores: Sequence[float],
    next_id: int,
    current: Mapping[int, np.ndarray] | None = None,
    iou_threshold: float = 0.5,
    max_lost: int = 30,
) -> Association:
    """Match one frame's detections (masks (N, H, W) bool with their labels and scores) to the live tracks.

    current: each track's mask in this frame as a video model propagated it (track id -> (H, W)
    bool; missing or empty: the model lost it), compared with the detections in place of its
    last mask. A track is seen this frame when its current mask is not empty or a detection
    matched it; a matched track takes the detection's mask and score. Pairs are chosen to
    maximise the total IoU (Hungarian assignment) among pairs of the same label with IoU >=
    iou_threshold. Unseen tracks keep their last mask and count one more lost frame; those reaching
    max_lost end. Every unmatched detection starts a track with id next_id, next_id + 1, ...
    """
    check_association_options(iou_threshold, max_lost)
    if not len(masks) == len(labels) == len(scores):
        raise InvalidOptionError(f"Got {len(masks)} masks, {len(labels)} labels and {len(scores)} scores; give one of each per detection.")
    current = current or {}
    masks = np.asarray(masks, dtype=bool)
    seen_now = {track.id: current[track.id] for track in tracks if track.id in current and current[track.id].any()}
    references = [seen_now.get(track.id, track.mask) for track in tracks]

    pairs: list[tuple[int, int]] = []  # (index into tracks, detection index)
    if len(tracks) and len(masks):
        iou = mask_iou(np.stack(references), masks)
        same_label = np.array([[track.label == label for label in labels] for track in tracks])
        allowed = (iou >= iou_threshold) & same_label
        rows, columns = linear_sum_assignment(np.where(allowed, iou, 0.0), maximize=True)
        pairs = [(row, column) for row, column in zip(rows.tolist(), columns.tolist()) if allowed[row, column]]

    matched_detection = {row: column for row, column in pairs}
    kept: list[Track] = []
    ended: list[int] = []
    for row, track in enumerate(tracks):
        if row in matched_detection:
            column = matched_detection[row]
            kept.append(replace(track, mask=masks[column], score=float(scores[column]), lost=0))
        elif track.id in seen_now:
            kept.append(replace(track, mask=seen_now[track.id], lost=0))
        elif track.lost + 1 >= max_lost:
            ended.append(track.id)
        else:
            kept.append(replace(track, lost=track.lost + 1))

    used = set(matched_detection.values())
    started = []
    for column in range(len(masks)):
        if column not in used:
            started.append((next_id, column))
            kept.append(Track(next_id, labels[column], float(scores[column]), masks[column]))
            next_id += 1
    return Association(
        tracks=tuple(sorted(kept, key=lambda track: track.id)),
        matched=tuple((tracks[row].id, column) for row, column in sorted(pairs)),
        started=tuple(started),
        ended=tuple(ended),
        next_id=next_id,
    )
