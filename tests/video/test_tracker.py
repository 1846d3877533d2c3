"""track() over a colour detector and an oracle video segmenter (it follows the true objects
perfectly, and loses them while they are hidden, as SAM 2 would): the detect-every-N schedule,
ids through an occlusion, tracks started mid-video, lost tracks prompted again, ended tracks
removed from the segmenter, and the JSON of a frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lang_sam.errors import InvalidOptionError
from lang_sam.geometry import mask_to_box
from lang_sam.results import decode_rle
from lang_sam.video.tracker import track
from lang_sam.vocabulary import Detections

HEIGHT, WIDTH = 40, 80
COLOURS = {"car": (255, 0, 0), "person": (0, 255, 0)}


def scene(count: int, hidden: range = range(0), enters: int = 0) -> list[np.ndarray]:
    """A car sliding right (hidden, painted over by nothing, during hidden) and, from frame enters, a person sliding left."""
    frames = []
    for t in range(count):
        frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        if t not in hidden:
            frame[5:17, 2 + t:14 + t] = COLOURS["car"]
        if t >= enters:
            frame[22:34, 60 - t:72 - t] = COLOURS["person"]
        frames.append(frame)
    return frames


def colour_mask(image: np.ndarray, label: str) -> np.ndarray:
    return (image == COLOURS[label]).all(axis=2)


class ColourDetector:
    """Finds each class by its colour: one box per class present, score 0.9."""

    name, device, dtype = "colours", torch.device("cpu"), torch.float32

    def __init__(self) -> None:
        self.calls = 0

    def preprocess(self, image):
        return image

    def detect(self, images, prompts, box_threshold=0.3, text_threshold=0.25, nms_iou_threshold=None):
        self.calls += 1
        results = []
        for image, classes in zip(images, prompts):
            pixels = np.asarray(image)
            found = [(mask_to_box(colour_mask(pixels, label)), index) for index, label in enumerate(classes)
                     if colour_mask(pixels, label).any()]
            results.append(Detections(
                xyxy=np.array([box for box, _ in found]).reshape(-1, 4), image_size=pixels.shape[:2],
                box_scores=np.full(len(found), 0.9), class_ids=[index for _, index in found], classes=classes))
        return results


class OracleStream:
    """Each object follows the true object its prompt box covered; once that one is hidden the object is
    lost (empty) until a prompt finds it again."""

    def __init__(self) -> None:
        self.image = None
        self.objects: dict[int, str] = {}
        self.prompted: list[tuple[int, list[int]]] = []
        self.removed: list[int] = []
        self.lost: set[int] = set()
        self.index = -1

    def _truth(self, object_id: int) -> np.ndarray:
        mask = colour_mask(self.image, self.objects[object_id])
        if not mask.any():
            self.lost.add(object_id)
        return mask & (object_id not in self.lost)

    def add_frame(self, image):
        self.image, self.index = image, self.index + 1
        return {object_id: self._truth(object_id) for object_id in self.objects}

    def segment_boxes(self, boxes):
        masks = np.zeros((len(boxes), HEIGHT, WIDTH), bool)
        for mask, (x0, y0, x1, y1) in zip(masks, np.asarray(boxes).astype(int)):
            mask[y0:y1, x0:x1] = True
        return masks

    def add_objects(self, boxes):
        self.prompted.append((self.index, sorted(boxes)))
        for object_id, box in boxes.items():
            region = self.segment_boxes(box[None])[0]
            self.objects[object_id] = max(COLOURS, key=lambda label: (colour_mask(self.image, label) & region).sum())
            self.lost.discard(object_id)
        return {object_id: self._truth(object_id) for object_id in boxes}

    def remove_objects(self, ids):
        self.removed.extend(ids)
        for object_id in ids:
            del self.objects[object_id]


class OracleSegmenter:
    name, family, device, dtype = "oracle", "oracle", torch.device("cpu"), torch.float32

    def __init__(self) -> None:
        self.stream = OracleStream()

    def start(self, size):
        assert size == (HEIGHT, WIDTH)
        return self.stream

    def parameter_count(self) -> int:
        return 0


def run(frames, **options):
    detector, segmenter = ColourDetector(), OracleSegmenter()
    results = list(track(iter(frames), "car, person", detector, segmenter, **options))
    return results, detector, segmenter.stream


def ids(results, label: str) -> list[int | None]:
    return [next((item.id for item in frame.objects if item.label == label), None) for frame in results]


def test_every_frame_gets_the_true_masks_and_the_detector_runs_every_n_frames():
    frames = scene(12)
    results, detector, _ = run(frames, redetect_every=5)
    assert detector.calls == 3  # frames 0, 5, 10
    assert [frame.index for frame in results] == list(range(12))
    for frame, image in zip(results, frames):
        assert {item.label for item in frame.objects} == {"car", "person"}
        for item in frame.objects:
            truth = colour_mask(image, item.label)
            assert (item.mask == truth).all() and (item.box == mask_to_box(truth)).all() and item.score == pytest.approx(0.9)
    assert len(set(ids(results, "car"))) == 1 and len(set(ids(results, "person"))) == 1


def test_an_object_entering_is_tracked_from_the_next_detection():
    results, _, stream = run(scene(12, enters=3), redetect_every=4)
    person = ids(results, "person")
    assert person[:4] == [None] * 4 and len(set(person[4:])) == 1  # seen by the detector on frame 4
    assert stream.prompted == [(0, [1]), (4, [2])]


def test_a_short_occlusion_keeps_the_id_and_prompts_the_lost_track_again():
    results, _, stream = run(scene(14, hidden=range(4, 6)), redetect_every=2, max_lost=4)
    car = ids(results, "car")
    assert car[4:6] == [None, None] and len({i for i in car if i is not None}) == 1
    assert (6, [car[0]]) in stream.prompted and stream.removed == []


def test_a_long_occlusion_ends_the_track_and_the_object_comes_back_with_a_new_id():
    results, _, stream = run(scene(16, hidden=range(3, 9)), redetect_every=1, max_lost=3)
    car = ids(results, "car")
    first, later = car[0], car[-1]
    assert later != first and stream.removed == [first]
    assert stream.prompted[-1] == (9, [later])


def test_frame_json_holds_ids_labels_boxes_and_rle_masks():
    results, _, _ = run(scene(2))
    payload = results[1].to_json()
    assert payload["frame"] == 1 and payload["time"] == pytest.approx(1 / 30, abs=1e-6)
    for entry, item in zip(payload["objects"], results[1].objects):
        assert (entry["id"], entry["label"], entry["box"]) == (item.id, item.label, item.box.tolist())
        assert (decode_rle(entry["mask"]) == item.mask).all()


def test_bad_options_are_refused_before_any_frame_is_read():
    for options, message in (({"redetect_every": 0}, "redetect_every"), ({"max_lost": 0}, "max_lost"),
                             ({"iou_threshold": 1.5}, "iou_threshold")):
        with pytest.raises(InvalidOptionError, match=message):
            track(iter(scene(1)), "car", ColourDetector(), OracleSegmenter(), **options)
    with pytest.raises(InvalidOptionError, match="Name what to track"):
        track(iter(scene(1)), [], ColourDetector(), OracleSegmenter())


def test_a_tracked_frame_is_detections_with_tracker_ids():
    from lang_sam.families.base import TrackedFrame, TrackedObject

    image = np.zeros((30, 40, 3), np.uint8)
    masks = np.zeros((3, 30, 40), bool)
    masks[0, 2:5, 3:9], masks[1, 10:20, 0:4], masks[2, 25:30, 30:40] = True, True, True
    boxes = np.array([[3, 2, 9, 5], [0, 10, 4, 20], [30, 25, 40, 30]], np.float32)
    objects = tuple(TrackedObject(ident, label, score, box, mask) for ident, label, score, box, mask
                    in zip([4, 9, 2], ["dog", "cat", "dog"], [0.5, 0.75, 0.25], boxes, masks))
    detections = TrackedFrame(3, 0.1, image, objects).detections
    assert len(detections) == 3 and detections.image_size == (30, 40)
    assert detections.tracker_ids.tolist() == [4, 9, 2] and detections.labels == ["dog", "cat", "dog"]
    assert detections.classes == ("dog", "cat") and detections.box_scores.tolist() == [0.5, 0.75, 0.25]
    np.testing.assert_array_equal(detections.xyxy, boxes)
    np.testing.assert_array_equal(detections.dense_masks(), masks)
    assert detections.to_supervision().tracker_id.tolist() == [4, 9, 2]
    assert len(TrackedFrame(0, 0.0, image, ()).detections) == 0
