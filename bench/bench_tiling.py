"""Peak memory and time of tiled text-prompted segmentation over GeoTIFFs of growing size.

For each side (default 5,000, 10,000 and 20,000 pixels), an RGB GeoTIFF of that size is built
window by window from the shared photos (../shared/data/demo-images, repeated and cut at random
positions; tiled 512 x 512, deflate), then a fresh process loads a SAM with random weights
(--sam vit_b: its true size; --sam tiny: the tests' tiny SAM, 192 wide and 2 blocks, so that the
scaling can be measured on a CPU) and the tests' tiny random Grounding DINO, runs one 1,024-pixel
tile as a warm-up and
takes its peak RSS as the models' own, then runs lang_sam.tiling.stream_tiles over the whole
raster (RasterReader windows, tile 1024, overlap 128, box and text thresholds 0 and at most
--per-tile boxes per tile, so that every tile gives objects to merge) and writes its chunks as
they come into the label GeoTIFF and a GeoPackage with write_tiled (--no-outputs only counts
them), as `lang-sam predict --tile` does. Reported: tiles, seconds per tile (the outputs
included), peak RSS above the models' own (bounded memory: it does not follow the area), objects,
the seconds the last step took (the label GeoTIFF's copy into its file, the GeoPackage's close),
and each side's ratios to the first: tiles, total seconds, seconds per tile. --sam vit_b --sides
2048 times vit_b on 9 tiles, for its seconds per tile at true size.

SAHI's own sliced prediction is not run here (it has no SAM mask path to run lang-sam's models
through); bench_tiling_sahi.py compares its slicing and merging with ours on the same objects.

    python bench/bench_tiling.py --sam tiny --sides 2048,4096           # the quick run (CPU: minutes)
    python bench/bench_tiling.py --sam tiny --sides 5000,10000,20000    # the scaling on a CPU
    python bench/bench_tiling.py --sides 2048                           # vit_b's seconds per tile (9 tiles)
    python bench/bench_tiling.py --sides 5000,10000,20000               # the issue's figures (a GPU: --device cuda)
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
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTOS = ROOT.parent / "shared" / "data" / "demo-images"
PROMPT = "car, roof, tree"


def build_raster(path: Path, side: int, photos: Path = PHOTOS) -> None:
    """An RGB GeoTIFF side x side (UTM, 0.3 m pixels) of the photos in photos, written 512 rows at a time."""
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    photos = [np.asarray(Image.open(photo).convert("RGB")) for photo in sorted(photos.glob("*.jp*g"))]
    if not photos:
        sys.exit(f"The shared photos are missing ({photos}); the benchmark builds its rasters from them (--photos).")
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8", "crs": "EPSG:32633",
               "transform": from_origin(500000, 4100000, 0.3, 0.3), "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    with rasterio.open(path, "w", **profile) as dataset:
        for top in range(0, side, 512):
            height = min(512, side - top)
            strip = np.empty((height, side, 3), np.uint8)
            for left in range(0, side, 512):
                photo = photos[rng.integers(len(photos))]
                y, x = rng.integers(0, photo.shape[0] - 512), rng.integers(0, photo.shape[1] - 512)
                strip[:, left:left + 512] = photo[y:y + height, x:x + min(512, side - left)]
            dataset.write(strip.transpose(2, 0, 1), window=rasterio.windows.Window(0, top, side, height))


def save_models(folder: Path, sam: str) -> None:
    """SAM (vit_b or the tests' tiny one) with random weights as folder/SAM.pth (Meta's format) and the
    tests' tiny random Grounding DINO with its processor."""
    from transformers import BertTokenizer, GroundingDinoImageProcessor, GroundingDinoProcessor

    from lang_sam.segmenter import build_sam_vit_b
    from tests.conftest import TINY_A, TINY_SAMS, bert_vocab_path, random_sam_state_dict, tiny_grounding_dino

    torch.manual_seed(0)
    weights = build_sam_vit_b().state_dict() if sam == "vit_b" else random_sam_state_dict(TINY_SAMS[TINY_A])
    torch.save(weights, folder / f"{sam}.pth")
    tiny_grounding_dino().save_pretrained(folder / "detector")
    tokenizer = BertTokenizer(vocab=str(bert_vocab_path()), do_lower_case=True)
    GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer).save_pretrained(folder / "detector")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(raster: Path, models: Path, sam: str, device: str, per_tile: int, outputs: bool) -> None:
    """One run in this process: print tiles, seconds, peak RSS (models' own and the run's) as one JSON line."""
    from lang_sam.pipeline import LangSAM
    from lang_sam.tiling import RasterReader, Window, segment_tiles, stream_tiles
    from lang_sam.tiling.outputs import write_tiled

    model = LangSAM(sam_checkpoint=models / f"{sam}.pth", detector=models / "detector", device=device, dtype="float32")
    options = {"box_threshold": 0.0, "text_threshold": 0.0, "max_detections": per_tile}
    tiles = []
    with RasterReader(raster) as reader:
        segment_tiles(model, reader, PROMPT, region=Window(0, 0, 1024, 1024), **options)  # warm-up: the models' own memory
        models_mb = peak_mb()
        started = time.perf_counter()
        last_tile = []

        def chunks():
            for chunk in stream_tiles(model, reader, PROMPT, progress=lambda done, total: tiles.append(total), **options):
                yield chunk
            last_tile.append(time.perf_counter())

        with tempfile.TemporaryDirectory() as out:
            found = write_tiled(chunks(), (reader.height, reader.width), reader.transform, reader.crs,
                                **({"labels": Path(out) / "labels.tif", "vectors": [Path(out) / "objects.gpkg"]} if outputs else {}))
        seconds = time.perf_counter() - started
    print(json.dumps({"tiles": tiles[-1], "seconds": seconds, "models_mb": models_mb, "peak_mb": peak_mb(),
                      "objects": found, "outputs_seconds": started + seconds - last_tile[0]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", default="5000,10000,20000", help="raster sides in pixels, comma separated")
    parser.add_argument("--sam", choices=("vit_b", "tiny"), default="vit_b",
                        help="random SAM: vit_b (its true size) or the tests' tiny one (the scaling on a CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-outputs", dest="outputs", action="store_false", help="leave out the label raster and GeoPackage")
    parser.add_argument("--per-tile", type=int, default=5, help="boxes kept per tile (max_detections)")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="the folder of JPEG photos the rasters are built from")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--models", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.models, args.sam, args.device, args.per_tile, args.outputs)
        return
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        save_models(folder, args.sam)
        print(f"{args.sam} SAM (random) + tiny random Grounding DINO, tile 1024, overlap 128, {args.per_tile} boxes a tile, "
              f"on {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
        print(f"{'side':>6} {'tiles':>6} {'s/tile':>7} {'models MB':>10} {'peak MB':>8} {'above MB':>9} {'objects':>8} {'finish s':>9}"
              f" {'x tiles':>8} {'x time':>7} {'x s/tile':>9}")
        first = None
        for side in (int(value) for value in args.sides.split(",")):
            raster = folder / f"{side}.tif"
            build_raster(raster, side, args.photos)
            output = subprocess.run([sys.executable, __file__, "--child", str(raster), "--models", str(folder), "--sam", args.sam,
                                     "--device", args.device, "--per-tile", str(args.per_tile),
                                     *([] if args.outputs else ["--no-outputs"])], check=True, capture_output=True, text=True)
            row = json.loads(output.stdout.strip().splitlines()[-1])
            raster.unlink()
            first = first or row
            per_tile = row["seconds"] / row["tiles"]
            print(f"{side:>6} {row['tiles']:>6} {per_tile:>7.2f} {row['models_mb']:>10.0f} "
                  f"{row['peak_mb']:>8.0f} {row['peak_mb'] - row['models_mb']:>9.0f} {row['objects']:>8} {row['outputs_seconds']:>9.1f}"
                  f" {row['tiles'] / first['tiles']:>8.2f} {row['seconds'] / first['seconds']:>7.2f}"
                  f" {per_tile / (first['seconds'] / first['tiles']):>9.2f}", flush=True)


if __name__ == "__main__":
    main()
