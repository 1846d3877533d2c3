"""What one request may ask of ``lang-sam serve``, and the flags that change it: here, apart from
the server, so that the CLI documents the defaults without importing LitServe."""

from __future__ import annotations

from dataclasses import dataclass

from lang_sam.errors import InvalidOptionError

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
DEFAULT_MAX_VIDEO_BYTES = 500 * 1024 * 1024  # POST /track: a few minutes of HD video


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server, so that no request holds a worker for minutes: each
    has a ``lang-sam serve`` flag (LIMIT_FLAGS) that the 422 refusing a request over it names."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_video_bytes: int = DEFAULT_MAX_VIDEO_BYTES
    max_points: int = 100  # clicks of one request (/predict, /decode)
    max_boxes: int = 64  # boxes of one request: one mask each
    max_points_per_side: int = 64  # mode=everything's grid side
    max_crop_layers: int = 2  # mode=everything's crop_n_layers
    max_everything_points: int = 8_192  # points one mode=everything decodes, over the grid and its crops
    max_track_frames: int = 9_000  # frames one /track follows (5 minutes at 30 fps), after start, end and stride

    def __post_init__(self) -> None:
        for name, flag in LIMIT_FLAGS.items():
            value, least = getattr(self, name), 0 if name == "max_crop_layers" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidOptionError(f"{flag} must be a whole number >= {least}, got {value!r}.")


LIMIT_FLAGS = {  # Limits field -> the lang-sam serve flag that sets it
    "max_upload_bytes": "--max-upload-mb", "max_image_pixels": "--max-image-pixels", "max_video_bytes": "--max-video-mb",
    "max_points": "--max-points", "max_boxes": "--max-boxes", "max_points_per_side": "--max-points-per-side",
    "max_crop_layers": "--max-crop-layers", "max_everything_points": "--max-everything-points",
    "max_track_frames": "--max-track-frames",
}


def over_limit(what: str, count: int, limits: Limits, name: str) -> InvalidOptionError:
    """The 422 of a request asking more than limits' name allows: the count, the limit, its flag."""
    return InvalidOptionError(f"The request asks for {count} {what}; this server takes at most {getattr(limits, name)} "
                              f"per request. Send fewer, or start the server with a larger {LIMIT_FLAGS[name]}.")
