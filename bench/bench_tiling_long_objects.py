"""Memory and time of joining and writing one object that crosses the whole raster (a road on its
diagonal), against compact objects (a disc in each tile), as the raster grows: no models, the tiles'
objects given (what a segmenter that sees the road in every tile would give).

Each run is a fresh process: tile_windows (tile 1,024, overlap 128) over a side x side raster, each
tile's part of the objects handed to TileMerger as it comes (to_image: in image pixels, compact),
and the merger's chunks written with write_tiled into a label GeoTIFF and a GeoPackage, as
`lang-sam predict --tile` does. The road (60 pixels wide, corner to corner) is joined from every
tile on the diagonal into one object whose box is the raster's; its mask is built, painted and
traced a column strip of at most lang_sam.vocabulary.strips.STRIP_PIXELS at a time. Reported: tiles,
objects written, seconds, peak RSS, and the road's peak over the discs' at the same side.

    python bench/bench_tiling_long_objects.py                        # sides 5,000, 10,000, 20,000, 40,000
    python bench/bench_tiling_long_objects.py --sides 5000,10000     # a shorter run
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TILE, OVERLAP, ROAD_HALF_WIDTH, DISC_RADIUS = 1024, 128, 30, 200
SHAPES = ("discs", "road")


def tile_objects(window, side: int, shape: str):
    """The tile's Detections (image pixels, compact) of the shape's objects: the road's part in the
    window, or a disc in its middle; None for a tile without any."""
    from lang_sam.tiling.merge import to_image
    from lang_sam.vocabulary import Detections

    rows, columns = np.ogrid[window.top:window.top + window.height, window.left:window.left + window.width]
    if shape == "road":
        mask = np.abs(columns - rows) <= ROAD_HALF_WIDTH
    else:
        middle_row, middle_column = window.top + window.height // 2, window.left + window.width // 2
        mask = (columns - middle_column) ** 2 + (rows - middle_row) ** 2 <= DISC_RADIUS ** 2
    if not mask.any():
        return None
    used_rows, used_columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    found = Detections(xyxy=np.array([[used_columns[0], used_rows[0], used_columns[-1] + 1, used_rows[-1] + 1]], np.float32),
                       image_size=mask.shape, masks=mask[None], box_scores=[0.9], mask_scores=[0.9], class_ids=[0],
                       classes=(shape,))
    return to_image(found, window, (side, side), [shape])


def child(side: int, shape: str) -> None:
    """One run, in this process: prints its figures as JSON."""
    from lang_sam.tiling import tile_windows
    from lang_sam.tiling.merge import TileMerger
    from lang_sam.tiling.outputs import write_tiled

    windows = tile_windows(side, side, TILE, OVERLAP)
    merger = TileMerger(windows, (side, side))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        chunks = (merger.add(tile_objects(window, side, shape)) for window in windows)
        written = write_tiled(chunks, (side, side), labels=Path(folder) / "labels.tif", vectors=[Path(folder) / "objects.gpkg"])
    print(json.dumps({"tiles": len(windows), "objects": written, "seconds": time.perf_counter() - start,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", default="5000,10000,20000,40000", help="raster sides in pixels, comma separated")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1])
        return
    from lang_sam.vocabulary.strips import STRIP_PIXELS

    print(f"tile {TILE}, overlap {OVERLAP}; road {2 * ROAD_HALF_WIDTH + 1} px wide on the diagonal, discs of radius "
          f"{DISC_RADIUS}; strips of at most {STRIP_PIXELS:,} pixels; each run a fresh process")
    print(f"{'side':>7}{'tiles':>7}{'shape':>7}{'objects':>9}{'seconds':>9}{'peak MB':>9}{'road / discs':>14}")
    for side in (int(value) for value in args.sides.split(",")):
        figures = {}
        for shape in SHAPES:
            output = subprocess.run([sys.executable, __file__, "--child", str(side), shape], capture_output=True, text=True, check=True)
            figures[shape] = json.loads(output.stdout.strip().splitlines()[-1])
            run = figures[shape]
            ratio = f"{run['peak_mb'] / figures['discs']['peak_mb']:.2f}x" if shape == "road" else ""
            print(f"{side:>7,}{run['tiles']:>7}{shape:>7}{run['objects']:>9}{run['seconds']:>9.1f}{run['peak_mb']:>9.0f}{ratio:>14}",
                  flush=True)


if __name__ == "__main__":
    main()
