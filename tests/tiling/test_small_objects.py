"""Small objects (issue 30's proof): on a 2,816 x 1,920 mosaic of the shared photos, the untiled
call resizes the image to Grounding DINO's 800 x 1,173 and cannot see the 36-pixel squares pasted
on it; tiled at 1,024 (seen at 800 x 800) every one is found, its box where it was pasted and its
mask the real SAM path's (tiny random SAM) for that tile. Counts: untiled 2 of 8 squares (the
large ones), tiled 8 of 8.

Weights are random, so the detector is a stand-in whose decisions are known and that behaves like
a real one in the way that matters here: it sees its input resized by Grounding DINO's own image
processor (shortest edge 800, longest 1,333) and finds a square only where it covers at least
MIN_PIXELS pixels of that input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from lang_sam.pipeline import LangSAM
from lang_sam.tiling import ArrayReader, segment_tiles, tile_windows
from lang_sam.vocabulary import Detections
from tests.conftest import shared_image

PHOTOS = ("truck.jpg", "dog.jpg", "food.jpg", "car.jpeg", "dogs.jpg", "fruits.jpg", "groceries.jpg", "person.jpg")
HEIGHT, WIDTH = 1920, 2816  # 3 x 2 tiles of 1,024 (overlap 128); every square below lies in one tile only
PATCH = (255, 0, 255)  # the squares' colour; the detector takes pixels within TOLERANCE of it on every channel
TOLERANCE = 40
MIN_PIXELS = 400  # a 20 x 20 square of the detector's input
SMALL, LARGE = 36, 160  # untiled (x 0.417): 15 px a side, 225 pixels, unseen; tiled (x 0.781): 28 px a side, 784, seen
SQUARES = [(200, 200, SMALL), (1300, 300, SMALL), (2300, 600, SMALL), (400, 1400, SMALL), (1500, 1700, SMALL),
           (2500, 1200, SMALL), (600, 500, LARGE), (2100, 1500, LARGE)]  # (left, top, side)


class PatchDetector:
    """Finds PATCH squares as Grounding DINO would see them: in its processor's resized pixels, a
    square is found when it covers at least MIN_PIXELS there; its box is scaled back to the image."""

    name, device, dtype = "patches", torch.device("cpu"), torch.float32

    def __init__(self) -> None:
        from transformers import GroundingDinoImageProcessor

        self.processor = GroundingDinoImageProcessor()  # shortest edge 800, longest 1,333: Grounding DINO's
        self.seen: list[tuple[int, int]] = []  # (h, w) of every input the detector looked at

    def preprocess(self, image: Image.Image) -> tuple[np.ndarray, tuple[int, int]]:
        """(h, w, 3) uint8 the processor's resized pixels, and the image's own (H, W)."""
        pixels = self.processor.preprocess(image, do_rescale=False, do_normalize=False, do_pad=False, return_tensors="np")
        return np.moveaxis(pixels["pixel_values"][0], 0, -1), (image.height, image.width)

    def detect(self, images, prompts, box_threshold=0.3, text_threshold=0.25, nms_iou_threshold=None) -> list[Detections]:
        assert prompts == "patch"
        return [self._squares(*image) for image in images]

    def _squares(self, pixels: np.ndarray, image_size: tuple[int, int]) -> Detections:
        self.seen.append(pixels.shape[:2])
        near = (np.abs(pixels.astype(np.int16) - np.array(PATCH)) <= TOLERANCE).all(axis=2)
        parts, _ = ndimage.label(near)
        scale = np.array([image_size[1] / pixels.shape[1], image_size[0] / pixels.shape[0]] * 2)
        boxes = [np.array([columns.start, rows.start, columns.stop, rows.stop]) * scale
                 for index, (rows, columns) in enumerate(ndimage.find_objects(parts), start=1)
                 if (parts[rows, columns] == index).sum() >= MIN_PIXELS]
        count = len(boxes)
        return Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4), image_size=image_size, box_scores=np.full(count, 0.9),
                          class_ids=np.zeros(count, int), classes=("patch",), data={"class_scores": np.full(count, 0.9)})


def photo_mosaic() -> np.ndarray:
    """(1920, 2816, 3) uint8: the eight shared photos in a 4 x 3 grid (the first four again in the last
    row); also the canvas of bench/bench_tiling_sahi.py."""
    photos = [np.asarray(Image.fromarray(shared_image(name)).resize((WIDTH // 4, HEIGHT // 3))) for name in PHOTOS]
    rows = [np.concatenate([photos[(row * 4 + column) % len(photos)] for column in range(4)], 1) for row in range(3)]
    return np.concatenate(rows, 0)


@pytest.fixture(scope="module")
def mosaic() -> np.ndarray:
    """The photo mosaic with the squares pasted on."""
    image = photo_mosaic()
    for left, top, side in SQUARES:
        image[top:top + side, left:left + side] = PATCH
    return image


def test_tiles_find_the_small_objects_the_untiled_call_cannot_see(mosaic, sam_files):
    detector = PatchDetector()
    model = LangSAM(sam_checkpoint=sam_files[0], detector=detector, device="cpu", dtype="float32")
    expected = np.array([[left, top, left + side, top + side] for left, top, side in SQUARES], np.float32)

    untiled = model.predict(mosaic, "patch").detections
    assert detector.seen == [(800, 1173)]
    assert len(untiled) == 2, "the untiled call sees only the two large squares"
    assert np.abs(np.sort(untiled.xyxy, axis=0) - np.sort(expected[-2:], axis=0)).max() <= 3

    detector.seen.clear()
    tiled = segment_tiles(model, ArrayReader(mosaic), "patch", tile=1024, overlap=128)
    windows = tile_windows(HEIGHT, WIDTH, 1024, 128)
    assert detector.seen == [(800, 800)] * len(windows) == [(800, 800)] * 6
    assert len(tiled) == len(SQUARES), "every square, small or large, is found once"
    order = np.lexsort((tiled.xyxy[:, 1], tiled.xyxy[:, 0]))
    found, expected = tiled[order], expected[np.lexsort((expected[:, 1], expected[:, 0]))]
    assert np.abs(found.xyxy - expected).max() <= 3, "each box is where its square was pasted"
    direct = {}  # the untiled call on each tile holding a square
    for box, mask in zip(found.xyxy, found.dense_masks()):
        window = next(window for window in windows if window.contains(box))  # the only tile holding the square
        x0, y0, x1, y1 = window.xyxy
        if window not in direct:
            direct[window] = model.predict(np.ascontiguousarray(mosaic[y0:y1, x0:x1]), "patch").detections
        direct_found = direct[window]
        own = np.argmin(np.abs(direct_found.xyxy - (box - np.array([x0, y0, x0, y0], np.float32))).sum(axis=1))
        assert np.array_equal(mask[y0:y1, x0:x1], direct_found.dense_masks()[own]), "the mask is SAM's for that tile, in its place"
        assert mask.sum() == mask[y0:y1, x0:x1].sum() > 0, "and lies wholly in that tile"
