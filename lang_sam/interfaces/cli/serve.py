"""lang-sam serve: the LitServe API server (and the app mounted on it)."""

from __future__ import annotations

import argparse

from lang_sam.errors import InvalidOptionError
from lang_sam.interfaces.cli import common
from lang_sam.interfaces.limits import Limits

NAME = "serve"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        NAME,
        help="run the LitServe API server",
        description="Serve POST /predict (multipart or JSON with base64 image; JSON or PNG answers), /embed + "
        "/decode (encode an image once, then clicks and boxes on it by image_id) and /health "
        "with LitServe, batching requests across clients. Needs the serve extra: pip install 'lang-sam[serve]'.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument("--workers-per-device", type=int, default=1, help="model workers per device (default: %(default)s)")
    serve.add_argument("--max-batch-size", type=int, default=4, help="requests batched together (default: %(default)s)")
    serve.add_argument("--batch-timeout", type=float, default=0.05, help="seconds to wait to fill a batch (default: %(default)s)")
    serve.add_argument("--timeout", type=float, default=120.0, help="seconds a request may wait for a worker (default: %(default)s)")
    serve.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body (default: %(default)s)")
    serve.add_argument("--max-image-pixels", type=int, default=40_000_000, help="largest image (default: %(default)s)")
    serve.add_argument("--max-video-mb", type=float, default=500.0, help="largest /track upload (default: %(default)s)")
    _add_request_limits(serve)
    serve.add_argument("--with-app", action="store_true", help="also serve the Gradio app at /app")
    serve.add_argument("--sam-types", help="comma-separated SAM names requests may ask for (default: --sam-type alone)")
    serve.add_argument("--detectors", help="comma-separated detectors requests may name in a detector field, beside --detector "
                       "(names from `lang-sam models`, repo ids or folders; default: --detector alone)")
    serve.add_argument("--semantic-models", help="comma-separated universal segmentation models that mode=everything's "
                       "semantic field may name to label the masks (names from `lang-sam models`, repo ids or folders; "
                       "default: none)")
    serve.add_argument("--preload", action="store_true", help="load every SAM of --sam-types at start, not on first use")
    serve.add_argument("--embeddings-kept", type=int, default=32,
                       help="image embeddings /embed keeps for /decode, 4 MB each with SAM v1, 42 MB with SAM 3 in "
                            "float32 (default: %(default)s)")
    common.add_model_arguments(serve)


def run(args: argparse.Namespace) -> int:
    common.require("litserve", "serve")
    from lang_sam.interfaces.server import serve

    serve(
        common.settings(args), _limits(args), args.host, args.port, args.max_batch_size, args.batch_timeout,
        args.workers_per_device, args.timeout, args.with_app,
        sam_types=_names(args.sam_types), preload=args.preload, embeddings_kept=args.embeddings_kept,
        detectors=_names(args.detectors), semantic_models=_names(args.semantic_models),
    )
    return 0


def _add_request_limits(serve: argparse.ArgumentParser) -> None:
    """What one request may ask of the server (lang_sam.interfaces.limits.Limits, whose defaults
    these are): a request over one gets a 422 naming its flag."""
    defaults = Limits()
    for flag, helped in (("--max-points", "clicks in one /predict or /decode request"),
                         ("--max-boxes", "boxes in one /predict or /decode request"),
                         ("--max-points-per-side", "mode=everything's largest points_per_side"),
                         ("--max-crop-layers", "mode=everything's largest crop_n_layers"),
                         ("--max-everything-points", ("points one mode=everything request decodes: points_per_side "
                                                      "squared times its crops (1, 5 or 21 for crop_n_layers 0, 1, 2)")),
                         ("--max-track-frames", "frames one /track request follows, after start, end and stride")):
        name = flag[2:].replace("-", "_")
        serve.add_argument(flag, type=int, default=getattr(defaults, name), help=f"{helped} (default: %(default)s)")


def _limits(args: argparse.Namespace) -> Limits:
    """serve's Limits from its flags, and its other numbers checked, before any model loads (and
    before LitServe, whose own checks end in a traceback): a flag out of range is the
    InvalidOptionError naming it."""
    for flag, value, least in (("--max-batch-size", args.max_batch_size, 1), ("--workers-per-device", args.workers_per_device, 1),
                               ("--embeddings-kept", args.embeddings_kept, 1), ("--batch-timeout", args.batch_timeout, 0)):
        if not value >= least:  # also NaN
            raise InvalidOptionError(f"{flag} must be >= {least}, got {value}.")
    for flag, value in (("--timeout", args.timeout), ("--max-upload-mb", args.max_upload_mb), ("--max-video-mb", args.max_video_mb)):
        if not 0 < value < float("inf"):
            raise InvalidOptionError(f"{flag} must be a number > 0, got {value}.")
    return Limits(max(1, int(args.max_upload_mb * 2**20)), args.max_image_pixels, max(1, int(args.max_video_mb * 2**20)),
                  args.max_points, args.max_boxes, args.max_points_per_side, args.max_crop_layers,
                  args.max_everything_points, args.max_track_frames)


def _names(text: str | None) -> list[str]:
    """A comma-separated list of names, blanks left out."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]
