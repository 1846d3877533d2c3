"""lang-sam's tiling against SAHI's (issue 30: "use SAHI's slicing and merging where it serves;
measure against it either way"), side by side in one run.

(a) The grids: lang_sam.tiling.tile_windows against sahi.slicing.get_slice_bboxes with the overlap
given as SAHI's ratio (overlap / tile), over many image sides: identical windows or not, tile
counts, every pixel covered; and the (tile, overlap) pairs whose ratio SAHI truncates back to
fewer pixels.

(b) Objects cut by tile borders, the same per-tile objects merged by lang-sam's rule
(lang_sam.tiling.merge_tiles: mask IoU over the overlap band >= 0.5, union, no NMS) and by each
SAHI postprocess (NMS, NMM, GREEDYNMM; the box match metric IOS, SAHI's get_sliced_prediction
default, and IOU; threshold 0.5; per class, as SAHI's default). Three scenes, each with its true
masks: "synthetic", known shapes on a 2,816 x 2,816 canvas (3 x 3 tiles of 1,024, overlap 128),
seen through each window by a perfect segmenter (the part of each mask inside it); the same with
each sliver's view (under SLIVER of its object) eroded by ERODE pixels, a segmenter that
under-segments what it barely sees, so that two tiles' views disagree over the band; "mosaic", the
shared photos' mosaic of tests/tiling/test_small_objects.py (3 x 2 tiles) with magenta shapes
pasted across borders and corners, found in each tile by that test's stand-in detector (Grounding
DINO's resize, a shape found where it covers 400 of its input pixels) and segmented by a stand-in
segmenter (the magenta pixels of the tile's component in the box). Per method: objects out against
objects truly there, whole (a true object with an output of IoU > 0.95), fragments (outputs
holding less than 95% of their object), duplicates (a second near-whole output of one object),
fused (one output holding > 10% of each of two objects).

(c) Merge time for N objects in the overlap bands (each seen by 2 or 4 tiles), lang-sam against
each SAHI postprocess on the same objects (SAHI's objects built beforehand: its masks are COCO
polygons, whose conversion is timed apart).

Needs sahi, installed beside lang-sam without its dependencies (its slicing and postprocess
modules import only numpy, shapely and cv2, which opencv-python-headless provides; with its
dependencies pip would add opencv-python, a second owner of cv2, fire and termcolor):

    pip install --no-deps sahi==0.12.8
    python bench/bench_tiling_sahi.py                      # 2 to 4 minutes on 2 busy CPU cores
    python bench/bench_tiling_sahi.py --objects 100,300    # a shorter timing part
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.timing import paired_ratio, take_turns
from lang_sam.tiling import merge_tiles, tile_windows
from lang_sam.tiling.merge import TileDetections, to_image
from lang_sam.tiling.windows import Window
from lang_sam.vocabulary import Detections

TILE, OVERLAP = 1024, 128
CLASSES = ("car", "tree")
WHOLE = 0.95  # IoU with the true mask above which an output is the whole object
SLIVER = 0.15  # a tile's view holding less than this share of its object's pixels is a sliver
ERODE = 12  # pixels a sliver's view loses in the scene of views that disagree
SAHI_METHODS = [("NMS", "IOU"), ("NMS", "IOS"), ("NMM", "IOU"), ("NMM", "IOS"), ("GREEDYNMM", "IOU"), ("GREEDYNMM", "IOS")]


@dataclass(frozen=True)
class Truth:
    """One true object: its name, class id and mask as a crop placed at (left, top) of the image."""

    name: str
    class_id: int
    left: int
    top: int
    crop: np.ndarray  # (h, w) bool

    def dense(self, image_size: tuple[int, int]) -> np.ndarray:
        mask = np.zeros(image_size, bool)
        mask[self.top:self.top + self.crop.shape[0], self.left:self.left + self.crop.shape[1]] = self.crop
        return mask


def disc(name: str, x: int, y: int, radius: int, class_id: int = 0) -> Truth:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return Truth(name, class_id, x - radius, y - radius, xx ** 2 + yy ** 2 <= radius ** 2)


def rectangle(name: str, x0: int, y0: int, x1: int, y1: int, class_id: int = 0) -> Truth:
    return Truth(name, class_id, x0, y0, np.ones((y1 - y0, x1 - x0), bool))


def u_shape(name: str, x0: int, y0: int, x1: int, y1: int, thickness: int) -> Truth:
    """A U open at the top: two arms and a base, one object that a tile above its base sees as two pieces."""
    crop = np.zeros((y1 - y0, x1 - x0), bool)
    crop[:, :thickness] = crop[:, -thickness:] = crop[-thickness:] = True
    return Truth(name, 0, x0, y0, crop)


def synthetic_scene() -> tuple[tuple[int, int], list[Truth]]:
    """2,816 x 2,816: tiles start at 0, 896 and 1,792 each way, so the bands are 896..1,024 and 1,792..1,920."""
    cars = [disc("small, inside a band", 960, 300, 40), disc("small, across a tile's edge", 1024, 600, 40),
            disc("large, across a border", 960, 1400, 220), disc("large, across a corner of 4 tiles", 1856, 1856, 220),
            disc("small, on a corner of 4 tiles", 960, 960, 30), rectangle("bar through 3 tiles", 150, 2500, 2650, 2524),
            rectangle("close pair, left", 1700, 300, 1830, 370), rectangle("close pair, right", 1838, 300, 1968, 370),
            *[disc(f"row in a band, {index + 1}", 1856, 400 + 40 * index, 12) for index in range(6)],
            disc("control, inside one tile", 400, 400, 60), u_shape("U whose arms cross a border", 300, 700, 600, 1150, 40),
            rectangle("field wider than a tile", 100, 1950, 1500, 2350), disc("large, a 20-px sliver in a tile", 2050, 1200, 150),
            rectangle("large, a 24-px sliver in a tile", 2300, 1000, 2600, 1300)]
    return (2816, 2816), [*cars, disc("tree on the large car's edge", 1150, 1400, 80, class_id=1)]


def seen_through(truths: list[Truth], window: Window, image_size: tuple[int, int], erode_slivers: int = 0) -> TileDetections:
    """A perfect segmenter's view of one tile: the part of each true mask inside the window; with
    erode_slivers, a view holding under SLIVER of its object is eroded by that many pixels (away from
    the tile's edges: a segmenter that under-segments what it sees little of)."""
    from scipy import ndimage

    found = []
    for truth in truths:
        part = Window(truth.left, truth.top, truth.crop.shape[1], truth.crop.shape[0]).intersection(window)
        if part is None:
            continue
        mask = np.zeros((window.height, window.width), bool)
        mask[part.top - window.top:part.top - window.top + part.height, part.left - window.left:part.left - window.left + part.width] = \
            truth.crop[part.top - truth.top:part.top - truth.top + part.height, part.left - truth.left:part.left - truth.left + part.width]
        if erode_slivers and mask.sum() < SLIVER * truth.crop.sum():
            mask = ndimage.binary_erosion(mask, iterations=erode_slivers, border_value=1)
        if mask.any():
            found.append((mask, truth.class_id))
    return tile_objects(window, [mask for mask, _ in found], [class_id for _, class_id in found], image_size)


def tile_objects(window: Window, masks: list[np.ndarray], class_ids: list[int], image_size: tuple[int, int]) -> TileDetections:
    """One tile's objects (tile-sized masks) as lang-sam's merge takes them: in image pixels, compact."""
    boxes = [[columns[0], rows[0], columns[-1] + 1, rows[-1] + 1]
             for rows, columns in ((np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))) for m in masks)]
    count = len(masks)
    found = Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4), image_size=(window.height, window.width),
                       masks=np.array(masks, bool).reshape(-1, window.height, window.width), box_scores=np.full(count, 0.9),
                       mask_scores=np.full(count, 0.9), class_ids=np.array(class_ids, np.int64), classes=CLASSES)
    return TileDetections(window, to_image(found, window, image_size, list(CLASSES)))


def mosaic_scene() -> tuple[np.ndarray, list[Truth]]:
    """The shared photos' mosaic (1,920 x 2,816: tiles start at 0, 896, 1,792 across and 0, 896 down)
    with magenta shapes pasted across its borders and corners."""
    from tests.tiling.test_small_objects import PATCH, photo_mosaic

    truths = [rectangle("square, across a border", 880, 300, 1040, 460), rectangle("small square, inside a band", 950, 1500, 986, 1536),
              disc("disc, across a corner of 4 tiles", 960, 960, 150), rectangle("square, across a corner of 4 tiles", 1706, 810, 2006, 1110),
              rectangle("road across a border", 1500, 1700, 2100, 1740), rectangle("close pair, left", 840, 1300, 920, 1380),
              rectangle("close pair, right", 928, 1300, 1008, 1380), rectangle("small square, alone", 200, 200, 236, 236),
              rectangle("small square, alone 2", 2500, 1200, 2536, 1236)]
    image = photo_mosaic()
    for truth in truths:
        image[truth.top:truth.top + truth.crop.shape[0], truth.left:truth.left + truth.crop.shape[1]][truth.crop] = PATCH
    return image, truths


def detected_through(image: np.ndarray, window: Window) -> TileDetections:
    """The stand-in detector's boxes in one tile (Grounding DINO's resize), each segmented as the
    tile's magenta component that fills most of the box (a segmenter whose decisions are known)."""
    from PIL import Image
    from scipy import ndimage

    from tests.tiling.test_small_objects import PATCH, TOLERANCE, PatchDetector

    tile = np.ascontiguousarray(image[window.top:window.top + window.height, window.left:window.left + window.width])
    detector = PatchDetector()
    boxes = detector.detect([detector.preprocess(Image.fromarray(tile))], "patch")[0].xyxy
    parts, _ = ndimage.label((np.abs(tile.astype(np.int16) - np.array(PATCH)) <= TOLERANCE).all(axis=2))
    masks = []
    for x0, y0, x1, y1 in np.round(boxes).astype(int):
        inside = parts[max(y0, 0):y1, max(x0, 0):x1]
        masks.append(parts == np.bincount(inside[inside > 0]).argmax())
    return tile_objects(window, masks, [0] * len(masks), image.shape[:2])


def sahi_merge(method: str, metric: str, objects: list) -> list:
    """One SAHI postprocess as get_sliced_prediction builds it (threshold 0.5, per class), on the
    objects of tests/tiling/test_sahi.py's sahi_predictions."""
    from sahi.postprocess.combine import GreedyNMMPostprocess, NMMPostprocess, NMSPostprocess

    kinds = {"NMS": NMSPostprocess, "NMM": NMMPostprocess, "GREEDYNMM": GreedyNMMPostprocess}
    return kinds[method](match_threshold=0.5, match_metric=metric, class_agnostic=False)(list(objects))


def score(outputs, truths: list[Truth], image_size: tuple[int, int]) -> tuple[dict[str, int], str]:
    """Objects out, truly there, whole, fragments, duplicates and fused, for outputs (dense mask, class
    id; one at a time, each compared with the true objects of its class); and a line naming the true
    objects that came out whole in no output and those that came out as more than one."""
    true = [truth.dense(image_size) for truth in truths]
    areas = np.array([mask.sum() for mask in true])
    whole = np.zeros(len(truths), bool)
    near_whole, owned = np.zeros(len(truths), int), np.zeros(len(truths), int)
    counts = {"out": 0, "true": len(truths), "fragments": 0, "fused": 0}
    for mask, class_id in outputs:
        counts["out"] += 1
        inter = np.array([np.logical_and(mask, other).sum() if truth.class_id == class_id else 0 for truth, other in zip(truths, true)])
        owner = int(np.argmax(inter))
        owned[owner] += 1
        whole[owner] |= inter[owner] / (mask.sum() + areas[owner] - inter[owner]) > WHOLE
        counts["fused"] += int((inter > 0.1 * areas).sum() > 1)
        if inter[owner] < WHOLE * areas[owner]:
            counts["fragments"] += 1
        else:
            near_whole[owner] += 1
    counts.update(whole=int(whole.sum()), duplicates=int(np.maximum(near_whole - 1, 0).sum()))
    missed = [truth.name for truth, done in zip(truths, whole) if not done]
    several = [truth.name for truth, count in zip(truths, owned) if count > 1]
    return counts, f"not whole: {'; '.join(missed) or 'none'}. More than one output: {'; '.join(several) or 'none'}."


def compare_merges(name: str, tiles: list[TileDetections], truths: list[Truth], image_size: tuple[int, int]) -> None:
    """Print one scene's table: lang-sam's merge and each SAHI postprocess on the same per-tile objects."""
    print(f"\n(b) {name}: {len(truths)} true objects, {sum(len(tile.detections) for tile in tiles)} per-tile objects "
          f"from {len(tiles)} tiles")
    print(f"{'method':<22}{'out':>5}{'true':>6}{'whole':>7}{'fragments':>11}{'duplicates':>12}{'fused':>7}{'out/true':>10}")
    from tests.tiling.test_sahi import sahi_predictions

    merged = merge_tiles(tiles, image_size)
    rows = {"lang-sam (band IoU)": score(zip(merged.dense_masks(), merged.class_ids), truths, image_size)}
    objects = sahi_predictions(tiles)
    for method, metric in SAHI_METHODS:
        merged_by_sahi = sahi_merge(method, metric, objects)
        rows[f"SAHI {method} {metric}"] = score(((found.mask.bool_mask, found.category.id) for found in merged_by_sahi), truths, image_size)
    for label, (counts, _) in rows.items():
        print(f"{label:<22}{counts['out']:>5}{counts['true']:>6}{counts['whole']:>7}{counts['fragments']:>11}"
              f"{counts['duplicates']:>12}{counts['fused']:>7}{counts['out'] / counts['true']:>10.2f}")
    for label, (_, names) in rows.items():
        print(f"  {label}: {names}")


def compare_grids() -> None:
    """(a): our windows against get_slice_bboxes over many sides; coverage; the ratios SAHI truncates."""
    from sahi.slicing import get_slice_bboxes

    pairs = [(1024, 128), (1024, 256), (512, 64), (640, 100), (800, 160), (1000, 128)]
    sides = list(range(1, 6001, 7))
    for tile, overlap in pairs:
        same = tiles_ours = tiles_sahi = uncovered = 0
        cases = 0
        for width in sides:
            for height in (sides[len(sides) * k // 5] for k in range(5)):
                ours = [list(window.xyxy) for window in tile_windows(height, width, tile, overlap)]
                theirs = get_slice_bboxes(height, width, tile, tile, False, overlap / tile, overlap / tile)
                cases += 1
                same += ours == theirs
                tiles_ours += len(ours)
                tiles_sahi += len(theirs)
                uncovered += not _covers(ours, height, width) or not _covers(theirs, height, width)
        print(f"tile {tile:>4} overlap {overlap:>3}: {same} of {cases} image sizes give identical windows, "
              f"tiles {tiles_ours} ours / {tiles_sahi} SAHI's, sizes with a pixel uncovered: {uncovered}")
    truncated = [(tile, overlap) for tile in range(32, 2049) for overlap in range(tile // 2 + 1) if int(overlap / tile * tile) != overlap]
    total = sum(tile // 2 + 1 for tile in range(32, 2049))
    print(f"(tile, overlap) pairs from 32 to 2,048 pixels whose ratio SAHI truncates to one pixel less: {len(truncated)} of {total}, "
          f"e.g. {truncated[:3]}")


def _covers(boxes: list[list[int]], height: int, width: int) -> bool:
    """Whether the boxes cover every pixel (a grid: each axis's intervals cover it)."""
    def covered(starts_ends: set[tuple[int, int]], length: int) -> bool:
        reach = 0
        for start, end in sorted(starts_ends):
            if start > reach:
                return False
            reach = max(reach, end)
        return reach >= length

    return covered({(box[0], box[2]) for box in boxes}, width) and covered({(box[1], box[3]) for box in boxes}, height)


def band_objects(count: int, image_size: tuple[int, int], rng: np.random.Generator) -> list[Truth]:
    """count small discs (radius 10) at random places in the overlap bands, each seen by 2 or 4 tiles,
    apart (no two boxes touch: distinct objects, as cars in a car park) and every tile's part of at
    least 30 pixels (SAHI drops a part too thin for a polygon: both merges get the same parts)."""
    windows = tile_windows(*image_size, TILE, OVERLAP)
    bands = [band for i, first in enumerate(windows) for second in windows[i + 1:] if (band := first.intersection(second))]
    truths: list[Truth] = []
    taken = np.zeros((0, 4))
    while len(truths) < count:
        band = bands[rng.integers(len(bands))]
        truth = disc(f"disc {len(truths)}", int(band.left + rng.integers(band.width)), int(band.top + rng.integers(band.height)), 10)
        box = Window(truth.left, truth.top, truth.crop.shape[1], truth.crop.shape[0])
        parts = [part for window in windows if (part := box.intersection(window))]
        apart = ((taken[:, 0] > box.left + box.width) | (taken[:, 2] < box.left) | (taken[:, 1] > box.top + box.height)
                 | (taken[:, 3] < box.top)).all()
        if apart and all(truth.crop[part.top - truth.top:part.top - truth.top + part.height,
                                    part.left - truth.left:part.left - truth.left + part.width].sum() >= 30 for part in parts):
            truths.append(truth)
            taken = np.vstack([taken, box.xyxy])
    return truths


def compare_times(counts: list[int], repeats: int) -> None:
    """(c): seconds to merge the same per-tile objects, lang-sam against each SAHI postprocess."""
    from sahi.postprocess.backends import resolve_backend

    from tests.tiling.test_sahi import sahi_predictions

    image_size = (2816, 2816)
    windows = tile_windows(*image_size, TILE, OVERLAP)
    print(f"\n(c) merge time, objects in the bands of {image_size[1]} x {image_size[0]} ({len(windows)} tiles), "
          f"median of {repeats} (SAHI's backend: {resolve_backend()})")
    print("seconds, and in brackets SAHI's time over lang-sam's (the median of the side-by-side ratios)")
    print(f"{'objects':>8}{'parts':>7}{'lang-sam':>10}" + "".join(f"{method + ' ' + metric:>19}" for method, metric in SAHI_METHODS)
          + f"{'to polygons':>13}")
    for count in counts:
        truths = band_objects(count, image_size, np.random.default_rng(count))
        tiles = [seen_through(truths, window, image_size) for window in windows]
        start = time.perf_counter()
        objects = sahi_predictions(tiles)
        conversion = time.perf_counter() - start
        runs = {"ours": lambda tiles=tiles: merge_tiles(tiles, image_size)}
        runs.update({f"{method} {metric}": lambda m=method, k=metric, found=objects: sahi_merge(m, k, found)
                     for method, metric in SAHI_METHODS})
        times, _ = take_turns(runs, repeats)
        ours = statistics.median(times["ours"])
        sahi = [times[f"{method} {metric}"] for method, metric in SAHI_METHODS]
        print(f"{count:>8}{len(objects):>7}{ours:>10.3f}" + "".join(
            f"{statistics.median(seconds):>11.3f} ({paired_ratio(seconds, times['ours']):.2f}x)" for seconds in sahi)
              + f"{conversion:>13.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", default="100,300,1000", help="object counts of the timing part, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    try:
        import sahi
    except ImportError:
        sys.exit("sahi is not installed: pip install --no-deps sahi==0.12.8 (see this file's docstring).")
    if not (ROOT.parent / "shared" / "data" / "demo-images").is_dir():
        sys.exit(f"The shared photos are missing ({ROOT.parent / 'shared' / 'data' / 'demo-images'}); the mosaic scene is built from them.")
    print(f"sahi {sahi.__version__}; tile {TILE}, overlap {OVERLAP} (SAHI: overlap ratio {OVERLAP / TILE})\n\n(a) slice grids")
    compare_grids()
    image_size, truths = synthetic_scene()
    windows = tile_windows(*image_size, TILE, OVERLAP)
    compare_merges("synthetic", [seen_through(truths, window, image_size) for window in windows], truths, image_size)
    compare_merges(f"synthetic, views of slivers (under {SLIVER:.0%} of an object) eroded by {ERODE} px",
                   [seen_through(truths, window, image_size, ERODE) for window in windows], truths, image_size)
    image, truths = mosaic_scene()
    compare_merges("mosaic", [detected_through(image, window) for window in tile_windows(*image.shape[:2], TILE, OVERLAP)],
                   truths, image.shape[:2])
    compare_times([int(count) for count in args.objects.split(",")], args.repeats)


if __name__ == "__main__":
    main()
