"""associate() on hand-made masks: each test moves squares through a small frame, detects what is
visible (in a shuffled order, so ids cannot come from the order) and checks that every ground-truth
object keeps one id for as long as it should, and gets a new one when it should."""

from __future__ import annotations

import numpy as np
import pytest

from lang_sam.errors import InvalidOptionError
from lang_sam.video.association import Track, associate, mask_iou

HEIGHT, WIDTH = 40, 80


def square(top: int, left: int, size: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[max(top, 0):max(top + size, 0), max(left, 0):max(left + size, 0)] = True
    return mask


def run(frames: list[dict[str, tuple[np.ndarray, str]]], max_lost: int = 5, iou_threshold: float = 0.5, seed: int = 0):
    """Associate every frame's visible objects (name -> (mask, label)); returns, per frame, the id
    each visible object got, and the ids ended at each frame."""
    rng = np.random.default_rng(seed)
    tracks: tuple[Track, ...] = ()
    next_id = 1
    ids_per_frame, ended_per_frame = [], []
    for objects in frames:
        names = [name for name, (mask, _) in objects.items() if mask.any()]
        rng.shuffle(names)
        masks = np.stack([objects[name][0] for name in names]) if names else np.zeros((0, HEIGHT, WIDTH), bool)
        labels = [objects[name][1] for name in names]
        result = associate(tracks, masks, labels, [0.9] * len(names), next_id, iou_threshold=iou_threshold, max_lost=max_lost)
        by_detection = {column: track_id for track_id, column in (*result.matched, *result.started)}
        ids_per_frame.append({name: by_detection[column] for column, name in enumerate(names)})
        ended_per_frame.append(result.ended)
        tracks, next_id = result.tracks, result.next_id
    return ids_per_frame, ended_per_frame


def ids_of(ids_per_frame: list[dict[str, int]], name: str) -> list[int]:
    return [ids[name] for ids in ids_per_frame if name in ids]


def test_mask_iou_matches_counted_pixels():
    a, b = square(0, 0, 10), square(5, 5, 10)
    expected = 25 / (100 + 100 - 25)
    assert mask_iou(a[None], np.stack([a, b])) == pytest.approx(np.array([[1.0, expected]]))
    assert mask_iou(np.zeros((1, HEIGHT, WIDTH), bool), np.zeros((1, HEIGHT, WIDTH), bool))[0, 0] == 0.0


def test_two_objects_crossing_keep_their_ids():
    # a moves right, b moves left, on rows that overlap: their masks overlap while they pass
    frames = [{"a": (square(10, 2 * t, 12), "car"), "b": (square(16, 60 - 2 * t, 12), "car")} for t in range(31)]
    overlapping = [t for t, objects in enumerate(frames) if (objects["a"][0] & objects["b"][0]).any()]
    assert len(overlapping) >= 5  # the test really crosses them
    ids, _ = run(frames)
    assert len(set(ids_of(ids, "a"))) == 1 and len(set(ids_of(ids, "b"))) == 1
    assert ids_of(ids, "a")[0] != ids_of(ids, "b")[0]


@pytest.mark.parametrize("max_lost", [3, 6])
def test_occlusion_shorter_than_max_lost_keeps_the_id(max_lost):
    hidden = range(10, 10 + max_lost - 1)  # unseen max_lost - 1 frames in a row
    frames = [{"a": (np.zeros((HEIGHT, WIDTH), bool) if t in hidden else square(10, 20 + t // 4, 16), "person")}
              for t in range(25)]
    ids, ended = run(frames, max_lost=max_lost)
    assert len(set(ids_of(ids, "a"))) == 1
    assert not any(ended)


@pytest.mark.parametrize("max_lost", [3, 6])
def test_occlusion_of_max_lost_frames_ends_the_track_and_a_new_id_follows(max_lost):
    hidden = range(10, 10 + max_lost)
    frames = [{"a": (np.zeros((HEIGHT, WIDTH), bool) if t in hidden else square(10, 20, 16), "person")} for t in range(25)]
    ids, ended = run(frames, max_lost=max_lost)
    before, after = ids_of(ids, "a")[0], ids_of(ids, "a")[-1]
    assert after != before and after > before  # a fresh id, never an old one
    assert [t for t, ids_ended in enumerate(ended) if ids_ended] == [hidden[-1]]
    assert ended[hidden[-1]] == (before,)


def test_entry_mid_video_gets_a_new_id_and_the_first_object_keeps_its_own():
    frames = [{"a": (square(5, 2 + t, 10), "car"),
               **({"b": (square(25, 60 - t, 10), "car")} if t >= 6 else {})} for t in range(15)]
    ids, _ = run(frames)
    assert len(set(ids_of(ids, "a"))) == 1 and len(set(ids_of(ids, "b"))) == 1
    assert ids_of(ids, "b")[0] > ids_of(ids, "a")[0]
    assert len(ids_of(ids, "b")) == 9


def test_exit_ends_the_track_max_lost_frames_after_the_object_left():
    frames = [{"a": (square(10, 60 + t, 12), "car")} for t in range(30)]  # slides out on the right
    last_visible = max(t for t, objects in enumerate(frames) if objects["a"][0].any())
    ids, ended = run(frames, max_lost=4)
    assert len(set(ids_of(ids, "a"))) == 1
    assert [t for t, ids_ended in enumerate(ended) if ids_ended] == [last_visible + 4]


def test_a_detection_of_another_label_never_continues_a_track():
    frames = [{"a": (square(10, 10, 16), "car")}, {"a": (square(10, 10, 16), "person")}]
    ids, _ = run(frames)
    assert ids[0]["a"] != ids[1]["a"]


def test_propagated_masks_keep_a_track_seen_without_detections():
    track = Track(7, "car", 0.8, square(10, 10, 16), lost=2)
    moved = square(10, 30, 16)
    result = associate([track], np.zeros((0, HEIGHT, WIDTH), bool), [], [], next_id=8, current={7: moved})
    assert result.tracks[0].lost == 0 and (result.tracks[0].mask == moved).all()
    # and a detection on the propagated mask matches, though it misses the last mask entirely
    found = associate([track], moved[None], ["car"], [0.6], next_id=8, current={7: moved})
    assert found.matched == ((7, 0),) and found.started == () and found.tracks[0].score == pytest.approx(0.6)


def test_assignment_maximises_total_iou_where_greedy_would_not():
    # the best single pair is t1-d0; taking it first would leave t2 unmatched (t2-d1 is below the
    # threshold), while t1-d1 and t2-d0 match both tracks
    def columns(start: int, stop: int) -> np.ndarray:
        mask = np.zeros((HEIGHT, WIDTH), bool)
        mask[:, start:stop] = True
        return mask

    t1, t2, d0, d1 = columns(0, 20), columns(9, 29), columns(4, 24), columns(0, 12)
    iou = mask_iou(np.stack([t1, t2]), np.stack([d0, d1]))
    assert iou.max() == iou[0, 0] and iou[1, 1] < 0.3 <= min(iou[0, 1], iou[1, 0])
    tracks = [Track(1, "car", 1.0, t1), Track(2, "car", 1.0, t2)]
    result = associate(tracks, np.stack([d0, d1]), ["car", "car"], [1.0, 1.0], next_id=3, iou_threshold=0.3)
    assert set(result.matched) == {(1, 1), (2, 0)} and result.started == ()


def test_bad_options_are_refused():
    with pytest.raises(InvalidOptionError, match="max_lost"):
        associate([], np.zeros((0, 4, 4), bool), [], [], 1, max_lost=0)
    with pytest.raises(InvalidOptionError, match="iou_threshold"):
        associate([], np.zeros((0, 4, 4), bool), [], [], 1, iou_threshold=0)
