"""predict and everything over rasters of any size (--tile): each input read window by window, run
tile by tile (lang_sam.tiling), its objects written as they are finished (memory bounded whatever
the raster's size) as a label GeoTIFF and polygons, then a preview beside a summary."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from lang_sam.errors import InvalidImageError, InvalidOptionError
from lang_sam.interfaces.cli import common
from lang_sam.interfaces.cli.image_outputs import write_outputs

VECTOR_SUFFIXES = {"gpkg": ".gpkg", "geojson": ".geojson", "shp": ".shp"}


def add_tiling_arguments(parser: argparse.ArgumentParser, prompts: bool, outputs: bool = True) -> None:
    """--tile (tiled mode), --overlap, --bands; with outputs, --vectors (predict and everything write
    rasters and polygons; label writes its datasets); with prompts, --region and --map-coordinates."""
    tiling = parser.add_argument_group("images of any size (tiled; needs pip install 'lang-sam[geo]')")
    writes = ", and write NAME.labels.tif, NAME.gpkg (--vectors), NAME.png (a preview) and NAME.json" if outputs else ""
    tiling.add_argument("--tile", metavar="PIXELS", help=f"run tile by tile, TILE pixels a side at the models' full resolution{writes} "
                        "($LANG_SAM_TILE; e.g. 1024)")
    tiling.add_argument("--overlap", dest="tile_overlap", metavar="PIXELS", help="pixels shared by neighbouring tiles ($LANG_SAM_TILE_OVERLAP; default 128)")
    tiling.add_argument("--bands", help='the raster bands shown as red, green, blue, e.g. "4,3,2", or one band (default 1,2,3)')
    if outputs:
        tiling.add_argument("--vectors", default="gpkg", help="polygon formats, of gpkg, geojson, shp (default: %(default)s)")
    if prompts:
        tiling.add_argument("--region", help='segment only in this box, "x0,y0,x1,y1" (pixels, or map units with --map-coordinates)')
        tiling.add_argument("--map-coordinates", action="store_true", help="--boxes and --region are in the raster's CRS, not pixels")


def tiling(args: argparse.Namespace) -> tuple[int, int] | None:
    """(tile, overlap) when the command runs tiled (--tile or $LANG_SAM_TILE), else None; checked."""
    from lang_sam.tiling import OVERLAP
    from lang_sam.tiling.windows import check_tiling

    settings = common.settings(args)
    if settings.tile is None:
        for flag in ("tile_overlap", "bands", "region", "map_coordinates"):
            if getattr(args, flag, None) not in (None, False):
                raise InvalidOptionError(f"--{flag.removeprefix('tile_').replace('_', '-')} is for tiled runs: add --tile 1024.")
        return None
    common.require("rasterio", "geo")
    tile = _whole_number(settings.tile, "--tile")
    overlap = OVERLAP if settings.tile_overlap is None else _whole_number(settings.tile_overlap, "--overlap")
    check_tiling(tile, overlap)
    if hasattr(args, "vectors"):  # label has none: it writes datasets
        vector_formats(args)
    return tile, overlap


def vector_formats(args: argparse.Namespace) -> list[str]:
    formats = [name.strip().lower() for name in args.vectors.split(",") if name.strip()]
    unknown = [name for name in formats if name not in VECTOR_SUFFIXES]
    if unknown or not formats:
        raise InvalidOptionError(f"--vectors takes {', '.join(VECTOR_SUFFIXES)} (comma separated), got {args.vectors!r}.")
    return formats


def bands(args: argparse.Namespace) -> tuple[int, ...] | None:
    from lang_sam.io.prompt_text import parse_coordinates

    if args.bands is None:
        return None
    values = parse_coordinates(args.bands, len(args.bands.split(",")), "--bands")[0]
    if any(value != int(value) for value in values):
        raise InvalidOptionError(f"--bands takes band numbers, e.g. 4,3,2; got {args.bands!r}.")
    return tuple(int(value) for value in values)


def text_segmenter(args: argparse.Namespace, model, tile: int, overlap: int, boxes) -> Callable[..., object]:
    """predict's segment(reader, progress): stream_tiles with the prompt, --boxes and --region
    (taken through the raster's transform with --map-coordinates) and the threshold flags."""
    from lang_sam.io.prompt_text import parse_coordinates
    from lang_sam.tiling import pixel_boxes, stream_tiles

    region = parse_coordinates(args.region, 4, "--region")[0] if args.region else None

    def segment(reader, progress):
        in_pixels = (lambda given: pixel_boxes(given, reader.transform)) if args.map_coordinates else (lambda given: given)
        return stream_tiles(
            model, reader, args.prompt, tile, overlap, boxes=None if boxes is None else in_pixels(boxes),
            region=None if region is None else in_pixels([region])[0], progress=progress,
            box_threshold=args.box_threshold, text_threshold=args.text_threshold, max_detections=args.max_detections,
            nms_iou_threshold=args.nms_iou_threshold, multimask_output=True if args.multimask else None)

    return segment


def run_tiled(args: argparse.Namespace, images: list[Path], outputs: dict[Path, str],
              segment: Callable[..., object]) -> int:
    """segment(reader, progress) -> the stream of Detections chunks of every input raster, written
    into args.out as it comes. Unreadable inputs are reported and skipped (exit code 1)."""
    from lang_sam.tiling import RasterReader

    failures = 0
    for path in images:
        try:
            with RasterReader(path, bands(args)) as reader, tqdm(desc=f"lang-sam {path.name}", unit="tile") as bar:
                def advance(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                found = _write(args, args.out / outputs[path], path, reader, segment(reader, advance))
        except InvalidImageError as error:
            failures += 1
            tqdm.write(f"lang-sam: skipped {path}: {error}", file=sys.stderr)
            continue
        print(f"lang-sam: {path}: {found} objects", file=sys.stderr)
    print(f"lang-sam: {len(images) - failures} of {len(images)} rasters written to {args.out}", file=sys.stderr)
    return 1 if failures else 0


def _write(args: argparse.Namespace, stem: Path, path: Path, reader, chunks) -> int:
    """STEM.labels.tif and STEM.<vectors> written from chunks as they come (they appear together
    once the last tile ran), then STEM.png (the preview) and STEM.json (last: the input is done).
    Returns how many objects were found."""
    from lang_sam.tiling.outputs import preview, write_tiled

    labels = stem.with_name(f"{stem.name}.labels.tif")
    vectors = [stem.with_name(f"{stem.name}{VECTOR_SUFFIXES[name]}") for name in vector_formats(args)]
    found = write_tiled(chunks, (reader.height, reader.width), reader.transform, reader.crs, labels=labels, vectors=vectors)
    summary = {"file": path.name, "image": {"height": reader.height, "width": reader.width},
               "crs": None if reader.crs is None else reader.crs.to_string(),
               "transform": None if reader.transform is None else list(reader.transform)[:6],
               "objects": found, "labels": labels.name, "vectors": [vector.name for vector in vectors]}
    write_outputs(stem, preview(reader, labels), summary)
    return found


def _whole_number(value: str, flag: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidOptionError(f"{flag} takes a whole number of pixels, e.g. 1024; got {value!r}.") from None

