"""What a /predict request may hold, checked with the library's own checks: each failure is the
project's error with a message that says what to send."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lang_sam.errors import InvalidImageError, InvalidOptionError, InvalidPromptError
from lang_sam.interfaces.limits import (  # noqa: F401 - Limits and the defaults are this module's API too
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_UPLOAD_BYTES,
    DEFAULT_MAX_VIDEO_BYTES,
    LIMIT_FLAGS,
    Limits,
    over_limit,
)
from lang_sam.interfaces.server.cancel import request_token
from lang_sam.io.images import load_image
from lang_sam.io.prompt_text import parse_coordinates, parse_point_labels
from lang_sam.io.rle import check_rle_counts
from lang_sam.registry import check_sam_type
from lang_sam.vocabulary import BOX_THRESHOLD, TEXT_THRESHOLD, ObjectPrompt

MAX_PROMPT_CHARACTERS = 2_000


def everything_crops(crop_n_layers: int) -> int:
    """The crops mode=everything prompts: the image, then 4^k crops in layer k."""
    return sum(4**layer for layer in range(crop_n_layers + 1))


def everything_points(points_per_side: int, crop_n_layers: int) -> int:
    """How many points mode=everything decodes: each crop is prompted with the whole grid (the
    server's crop_n_points_downscale_factor is 1)."""
    return points_per_side**2 * everything_crops(crop_n_layers)


@dataclass
class PredictRequest:
    image: np.ndarray
    prompt: str
    sam_type: str
    box_threshold: float
    text_threshold: float
    max_detections: int | None
    response_format: str
    nms_iou_threshold: float | None = None
    multimask_output: bool | None = None
    include_drawing: bool = False
    user_prompts: dict[str, Any] | None = None  # points, point_labels, boxes, mask_input for LangSAM.predict
    detector: str | None = None  # None: the server's own

    @property
    def options(self) -> tuple:
        """Requests with equal options share one batched predict call (requests with clicks or
        boxes of their own run alone)."""
        return (self.sam_type, self.detector, self.box_threshold, self.text_threshold, self.max_detections,
                self.nms_iou_threshold, self.multimask_output, id(self) if self.user_prompts else None)


@dataclass
class RasterRequest:
    """format=geojson: the upload is a raster (GeoTIFF or any format GDAL reads), segmented by the
    prompt in tiles (lang_sam.tiling) and answered as GeoJSON in its CRS."""

    raster: bytes
    prompt: str
    sam_type: str
    detector: str | None
    options: dict[str, Any]  # LangSAM.predict's: thresholds, max_detections (per tile), nms_iou_threshold, multimask_output
    tile: int
    overlap: int
    max_pixels: int  # the server's max_image_pixels, checked against the raster's size when it is opened
    token: str | None = None  # the request guard's: its cancel flag (cancel.py)


@dataclass
class EverythingRequest:
    """mode=everything: SAM's automatic mask generator on the image, no prompt."""

    image: np.ndarray
    sam_type: str
    response_format: str
    generator_options: dict[str, Any]
    include_drawing: bool = False
    semantic: str | None = None  # the served universal model that names the masks, or none
    token: str | None = None  # the request guard's: its cancel flag (cancel.py)


@dataclass
class EmbedRequest:
    """mode=embed (POST /embed): encode the image once; /decode then names it by the image_id answered."""

    image: np.ndarray
    sam_type: str


@dataclass
class DecodeRequest:
    """mode=decode (POST /decode): clicks and boxes against the embedding /embed made; no image sent."""

    image_id: str
    sam_type: str
    user_prompts: dict[str, Any]
    multimask_output: bool | None = None


IMAGE_ID_CHARACTERS = 32  # pipeline.image_key: 16 bytes, hexadecimal
MODES = ("text", "everything", "embed", "decode")

# mode=everything: generator option -> (kind, default, smallest, largest); bounds keep one request's work in reason
GENERATOR_FIELDS: dict[str, tuple[type, Any, float, float | str]] = {
    "points_per_side": (int, 32, 1, "max_points_per_side"),  # a name: the Limits field that bounds it
    "pred_iou_thresh": (float, 0.88, 0.0, 1.0),
    "stability_score_thresh": (float, 0.95, 0.0, 1.0),
    "box_nms_thresh": (float, 0.7, 0.0, 1.0),
    "crop_n_layers": (int, 0, 0, "max_crop_layers"),
    "min_mask_region_area": (int, 0, 0, 1_000_000),
}


@dataclass
class Rejected:
    """A request answered with an error status instead of a prediction."""

    status: int
    detail: str


def parse_request(
    payload: Mapping[str, Any], default_sam_type: str, limits: Limits, check_sam: Callable[[object], str] = check_sam_type,
    check_detector: Callable[[object], str] | None = None, check_semantic: Callable[[object], str] | None = None,
) -> PredictRequest | EverythingRequest | EmbedRequest | DecodeRequest:
    """Check a request's fields; raise the project's errors with a message that says what to send.
    check_detector, check_semantic: the pool's checks of a ``detector`` field and of mode=everything's
    ``semantic`` field (None: the field is refused)."""
    mode = payload.get("mode") or "text"
    if mode not in MODES:
        raise InvalidOptionError(f'Unknown mode {mode!r}; use "text" (the default: a prompt names what to find), '
                                 f'"everything", "embed" or "decode" (POST /embed, /decode).')
    if mode == "decode":
        return _decode_request(payload, default_sam_type, limits, check_sam)
    data = _image_bytes(payload.get("image"))
    if mode == "everything":
        return _everything_request(payload, data, default_sam_type, limits, check_sam, check_semantic)
    if mode == "embed":
        _response_format(payload, "json", ("json",))
        return EmbedRequest(load_image(data, max_pixels=limits.max_image_pixels), check_sam(payload.get("sam_type") or default_sam_type))
    prompt = payload.get("prompt")
    legacy = prompt is None and "text_prompt" in payload  # lang-segment-anything v0.2.x's client
    if legacy:
        prompt = payload["text_prompt"]
    user_prompts = _user_prompts(payload, limits)
    if user_prompts and prompt in (None, ""):
        prompt = None
    elif not isinstance(prompt, str) or not prompt.strip():
        raise InvalidPromptError('Send a text "prompt" naming what to segment, e.g. "car, wheel", or "points" / "boxes" '
                                 '(or "exemplars" with SAM 3).')
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARACTERS:
        raise InvalidPromptError(f"The prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARACTERS}.")
    sam_type = check_sam(payload.get("sam_type") or default_sam_type)  # the pool's check: known and served
    detector = payload.get("detector") or None
    if detector is not None:
        if check_detector is None:
            raise InvalidOptionError("This server runs one detector; leave out the detector field.")
        detector = check_detector(detector)
    response_format = _response_format(payload, "png" if legacy else "json", ("json", "png", "geojson"))
    max_detections = payload.get("max_detections")
    if max_detections in (None, ""):
        max_detections = None
    else:
        max_detections = _number(max_detections, "max_detections", integer=True)
        if max_detections < 0:
            raise InvalidOptionError(f"max_detections must be >= 0, got {max_detections}.")
    options = {
        "box_threshold": _threshold(payload, "box_threshold", BOX_THRESHOLD),
        "text_threshold": _threshold(payload, "text_threshold", TEXT_THRESHOLD),
        "max_detections": max_detections,
        "nms_iou_threshold": _threshold(payload, "nms_iou_threshold", None),
        "multimask_output": _flag(payload, "multimask_output") if payload.get("multimask_output") not in (None, "") else None,
    }
    if response_format == "geojson":
        return _raster_request(payload, data, prompt, user_prompts, sam_type, detector, options, limits)
    return PredictRequest(image=load_image(data, max_pixels=limits.max_image_pixels), prompt=prompt, sam_type=sam_type,
                          response_format=response_format, include_drawing=_flag(payload, "include_drawing"),
                          user_prompts=user_prompts or None, detector=detector, **options)


def _raster_request(payload: Mapping[str, Any], data: bytes, prompt: str | None, user_prompts: dict[str, Any], sam_type: str,
                    detector: str | None, options: dict[str, Any], limits: Limits) -> RasterRequest:
    """format=geojson: a text prompt over the uploaded raster in tiles of tile pixels (default
    lang_sam.tiling's), neighbours sharing overlap; the raster is opened by the worker."""
    from lang_sam.tiling.windows import OVERLAP, TILE, check_tiling

    if user_prompts or prompt is None:
        raise InvalidPromptError('format=geojson takes a text "prompt" only (no points, boxes or mask): it names what to find in every tile.')
    if _flag(payload, "include_drawing"):
        raise InvalidOptionError("format=geojson answers GeoJSON only; leave include_drawing out.")
    tile, overlap = (default if payload.get(name) in (None, "") else _number(payload[name], name, integer=True)
                     for name, default in (("tile", TILE), ("overlap", OVERLAP)))
    check_tiling(tile, overlap)
    return RasterRequest(raster=data, prompt=prompt, sam_type=sam_type, detector=detector, options=options, tile=tile,
                         overlap=overlap, max_pixels=limits.max_image_pixels, token=request_token(payload))


def _user_prompts(payload: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """points, point_labels, boxes and SAM 3's exemplars and negative_exemplars (JSON lists, or
    multipart text "x,y;x,y" and "1,0"), and mask
    (a COCO RLE of the previous mask, JSON text in multipart); counted against limits here, their
    values checked by LangSAM.predict itself."""
    prompts: dict[str, Any] = {}
    for name, per_item, limit in (("points", 2, "max_points"), ("boxes", 4, "max_boxes"), ("exemplars", 4, "max_boxes"),
                                  ("negative_exemplars", 4, "max_boxes")):
        value = payload.get(name)
        if value in (None, ""):
            continue
        count = _item_count(value, per_item)
        if count > getattr(limits, limit):
            raise over_limit(name, count, limits, limit)
        prompts[name] = parse_coordinates(value, per_item, name) if isinstance(value, str) else value
    labels = payload.get("point_labels")
    if labels not in (None, ""):
        if isinstance(labels, list):
            labels = ",".join(str(label) for label in labels)
        if not isinstance(labels, str):
            raise InvalidPromptError(f'point_labels are 1 (object) or 0 (background), e.g. [1, 0] or "1,0"; got {labels!r}.')
        prompts["point_labels"] = parse_point_labels(labels, "point_labels")
    mask = payload.get("mask")
    if mask not in (None, ""):
        prompts["mask"] = _rle(mask)
    return prompts


def _item_count(value: Any, per_item: int) -> int:
    """How many points or boxes a field holds, counted before anything is parsed or converted:
    ";"-separated items of text, rows of a nested list, or numbers / per_item of a flat one."""
    if isinstance(value, str):
        return sum(1 for item in value.split(";") if item.strip())
    if isinstance(value, list):
        return len(value) if not value or isinstance(value[0], list) else -(-len(value) // per_item)
    return 1  # not a list: LangSAM.predict's check says what it should be


def _decode_request(payload: Mapping[str, Any], default_sam_type: str, limits: Limits,
                    check_sam: Callable[[object], str]) -> DecodeRequest:
    image_id = payload.get("image_id")
    if not (isinstance(image_id, str) and len(image_id) == IMAGE_ID_CHARACTERS
            and all(c in "0123456789abcdef" for c in image_id)):
        raise InvalidOptionError(f"image_id must be the id that POST /embed answered ({IMAGE_ID_CHARACTERS} hexadecimal "
                                 f"characters), got {image_id!r}.")
    if payload.get("prompt") not in (None, "") or payload.get("image") not in (None, ""):
        raise InvalidPromptError("/decode takes clicks and boxes only, no image or text prompt; POST those to /predict.")
    user_prompts = _user_prompts(payload, limits)
    if not user_prompts.keys() & {"points", "boxes"}:
        raise InvalidPromptError('/decode needs "points" (with "point_labels") or "boxes".')
    if user_prompts.keys() & {"exemplars", "negative_exemplars"}:
        raise InvalidPromptError("/decode takes clicks and boxes on an object; exemplar boxes find every instance of a "
                                 "concept: POST them to /predict.")
    _response_format(payload, "json", ("json",))
    if _flag(payload, "include_drawing"):
        raise InvalidOptionError("/decode answers JSON only (it has no image to draw on); draw the masks yourself or use /predict.")
    return DecodeRequest(
        image_id=image_id,
        sam_type=check_sam(payload.get("sam_type") or default_sam_type),
        user_prompts=user_prompts,
        multimask_output=_flag(payload, "multimask_output") if payload.get("multimask_output") not in (None, "") else None,
    )


def _rle(value: Any) -> dict[str, Any]:
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidPromptError('mask must be a COCO RLE {"size": [H, W], "counts": "..."} (JSON).') from None
    if not (isinstance(value, dict) and isinstance(value.get("counts"), str) and isinstance(value.get("size"), list)
            and len(value["size"]) == 2 and all(isinstance(v, int) and v >= 1 for v in value["size"])):
        raise InvalidPromptError('mask must be a COCO RLE {"size": [H, W], "counts": "..."}, as the answers hold them.')
    check_rle_counts(value["counts"], value["size"])
    return value


def _everything_request(payload: Mapping[str, Any], data: bytes, default_sam_type: str, limits: Limits,
                        check_sam: Callable[[object], str], check_semantic: Callable[[object], str] | None) -> EverythingRequest:
    semantic = payload.get("semantic") or None
    if semantic is not None:
        if check_semantic is None:
            raise InvalidOptionError("This server names no masks; leave out the semantic field.")
        semantic = check_semantic(semantic)
    options = {name: _generator_option(payload, name, limits) for name in GENERATOR_FIELDS}
    decoded = everything_points(options["points_per_side"], options["crop_n_layers"])
    if decoded > limits.max_everything_points:
        side, layers = options["points_per_side"], options["crop_n_layers"]
        raise over_limit(f"points to decode (a {side}x{side} grid on each of {everything_crops(layers)} crops, "
                         f"crop_n_layers {layers})", decoded, limits, "max_everything_points")
    return EverythingRequest(
        image=load_image(data, max_pixels=limits.max_image_pixels),
        sam_type=check_sam(payload.get("sam_type") or default_sam_type),
        response_format=_response_format(payload, "json"),
        generator_options=options,
        include_drawing=_flag(payload, "include_drawing"),
        semantic=semantic,
        token=request_token(payload),
    )


def _generator_option(payload: Mapping[str, Any], name: str, limits: Limits) -> int | float:
    """One mode=everything field checked against its bounds; a bound from limits names its flag."""
    kind, default, smallest, largest = GENERATOR_FIELDS[name]
    value = payload.get(name)
    number = default if value in (None, "") else _number(value, name, integer=kind is int)
    flag = ""
    if isinstance(largest, str):
        largest, flag = getattr(limits, largest), f" on this server (lang-sam serve {LIMIT_FLAGS[largest]})"
    if not smallest <= number <= largest:
        raise InvalidOptionError(f"{name} must be between {smallest} and {largest} in mode=everything{flag}, got {value!r}.")
    return number


def _response_format(payload: Mapping[str, Any], default: str, formats: tuple[str, ...] = ("json", "png")) -> str:
    """The format field, one of formats (those this mode answers)."""
    response_format = str(payload.get("format") or default).lower()
    if response_format not in ("json", "png", "geojson"):
        raise InvalidOptionError(f'Unknown format {response_format!r}; use "json", "png" or (a raster, mode text) "geojson".')
    if response_format not in formats:
        answers = "JSON only" if formats == ("json",) else " or ".join(formats)
        raise InvalidOptionError(f'mode={payload.get("mode") or "text"} answers {answers}; leave "format" out or send "json".')
    return response_format


def _image_bytes(field: Any, what: str = "image") -> bytes:
    """The uploaded file's bytes (a multipart file: starlette's UploadFile) or base64 text decoded."""
    if hasattr(field, "file"):
        data = field.file.read()
    elif isinstance(field, str):
        try:
            text = field.split(",", 1)[-1] if field.startswith("data:") else field
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImageError(f'The "{what}" field is not valid base64.') from None
    else:
        raise InvalidImageError(f'Send the {what} as a multipart file field "{what}", or as base64 text in JSON "{what}".')
    if not data:
        raise InvalidImageError(f"The uploaded {what} is empty (0 bytes).")
    return data


@dataclass
class TrackRequest:
    """POST /track: the uploaded video's bytes, the prompt or the clicked objects, the video model
    and detector, and the options of lang_sam.video.tracker.open_and_track (start, end, stride,
    redetect_every, ...; start, end and stride alone with clicks)."""

    video: bytes
    prompt: str | None
    sam_type: str | None
    detector: str | None
    options: dict[str, Any]
    upload_name: str | None = None  # the client's file name, which messages call the video by
    clicks: dict[int, ObjectPrompt] | None = None  # lang_sam.video.clicks.clicked_objects's, on the first frame
    click_labels: dict[int, str] | None = None  # each clicked object's class name


TEXT_TRACKING_FIELDS = ("detector", "box_threshold", "text_threshold", "iou_threshold", "redetect_every", "max_lost")
CLICKS_EXAMPLE = '[{"points": [[120, 80], [300, 90]], "point_labels": [1, 0], "label": "dog"}]'


def parse_track_request(payload: Mapping[str, Any], check_sam: Callable[[object], str],
                        check_detector: Callable[[object], str], limits: Limits) -> TrackRequest:
    """Check a /track request's fields; the video itself, and the clicks against its first frame,
    are checked when it is opened."""
    prompt, clicks = payload.get("prompt"), payload.get("clicks")
    if clicks not in (None, ""):
        if prompt not in (None, ""):
            raise InvalidPromptError('Send a text "prompt" or "clicks", one or the other.')
        return _clicks_request(payload, clicks, check_sam, limits)
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidPromptError('Send a text "prompt" naming what to track, e.g. "car, person", or "clicks" on the first '
                                 f"frame, e.g. {CLICKS_EXAMPLE}.")
    if len(prompt) > MAX_PROMPT_CHARACTERS:
        raise InvalidPromptError(f"The prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARACTERS}.")
    sam_type = payload.get("sam_type") or None
    detector = payload.get("detector") or None
    options: dict[str, Any] = {"box_threshold": _threshold(payload, "box_threshold", BOX_THRESHOLD),
                               "text_threshold": _threshold(payload, "text_threshold", TEXT_THRESHOLD),
                               "iou_threshold": _threshold(payload, "iou_threshold", 0.5)}
    options.update(_frame_options(payload))
    for name in ("redetect_every", "max_lost"):
        if payload.get(name) not in (None, ""):
            options[name] = _number(payload[name], name, integer=True)
    _check_tracking_options(options)
    return TrackRequest(_image_bytes(payload.get("video"), "video"), prompt,
                        None if sam_type is None else check_sam(sam_type),
                        None if detector is None else check_detector(detector), options, _upload_name(payload))


def _clicks_request(payload: Mapping[str, Any], clicks: Any, check_sam: Callable[[object], str], limits: Limits) -> TrackRequest:
    """clicks: JSON text (or a list) of objects, each {"points": [[x, y], ...], "point_labels":
    [1, 0, ...] (default all 1), "label": "name" (default "object")}; counted against limits, then
    checked as LangSAM.track checks clicks."""
    from lang_sam.video.clicks import CLICKED_LABEL, clicked_objects

    text_options = [name for name in TEXT_TRACKING_FIELDS if payload.get(name) not in (None, "")]
    if text_options:
        raise InvalidOptionError(f"{', '.join(text_options)}: options of text tracking; clicks take start, end and stride only.")
    if isinstance(clicks, str):
        try:
            clicks = json.loads(clicks)
        except json.JSONDecodeError:
            clicks = None
    if not isinstance(clicks, list) or not clicks or not all(isinstance(item, dict) and _pairs(item.get("points")) for item in clicks):
        raise InvalidPromptError(f'"clicks" is a JSON list of objects, each with its "points", a list of [x, y] (and '
                                 f'"point_labels", "label"), e.g. {CLICKS_EXAMPLE}.')
    unknown = sorted({key for item in clicks for key in item} - {"points", "point_labels", "label"})
    if unknown:
        raise InvalidPromptError(f'Clicked objects take "points", "point_labels" and "label"; got {", ".join(map(repr, unknown))}.')
    if len(clicks) > limits.max_boxes:
        raise over_limit("clicked objects", len(clicks), limits, "max_boxes")
    points = sum(len(item["points"]) for item in clicks)
    if points > limits.max_points:
        raise over_limit("clicks", points, limits, "max_points")
    prompts, names = clicked_objects([item["points"] for item in clicks], [item.get("point_labels") for item in clicks],
                                     [item.get("label", CLICKED_LABEL) for item in clicks])
    sam_type = payload.get("sam_type") or None
    return TrackRequest(_image_bytes(payload.get("video"), "video"), None, None if sam_type is None else check_sam(sam_type),
                        None, _frame_options(payload), _upload_name(payload), prompts, names)


def _pairs(points: Any) -> bool:
    """Whether points is a non-empty list of lists (one object's [[x, y], ...]; the numbers are checked later)."""
    return isinstance(points, list) and bool(points) and all(isinstance(point, list) for point in points)


def _frame_options(payload: Mapping[str, Any]) -> dict[str, Any]:
    """start, end and stride, where given."""
    return {name: _number(payload[name], name, integer=integer)
            for name, integer in (("start", False), ("end", False), ("stride", True)) if payload.get(name) not in (None, "")}


def _upload_name(payload: Mapping[str, Any]) -> str | None:
    name = getattr(payload.get("video"), "filename", None)
    return name if isinstance(name, str) and name else None


def _check_tracking_options(options: Mapping[str, Any]) -> None:
    """The checks lang_sam.video.tracker.track makes of redetect_every, max_lost and iou_threshold,
    made here: a streamed answer has sent its 200 by the time the tracker runs, so a bad value
    found there could only end the stream with an error line."""
    from lang_sam.video.association import check_association_options

    redetect_every = options.get("redetect_every", 1)
    if redetect_every < 1:
        raise InvalidOptionError(f"redetect_every must be a whole number of frames >= 1, got {redetect_every!r}.")
    check_association_options(options["iou_threshold"], options.get("max_lost", 1))


def _flag(payload: Mapping[str, Any], name: str) -> bool:
    value = payload.get(name)
    if value in (None, "", False, "false", "False", "0", 0):
        return False
    if value in (True, "true", "True", "1", 1):
        return True
    raise InvalidOptionError(f"{name} must be true or false, got {value!r}.")


def _threshold(payload: Mapping[str, Any], name: str, default: float | None) -> float | None:
    value = payload.get(name)
    if value in (None, ""):
        return default
    number = _number(value, name)
    if not 0.0 <= number <= 1.0:
        raise InvalidOptionError(f"{name} must be between 0 and 1, got {value!r}.")
    return number


def _number(value: Any, name: str, integer: bool = False) -> float | int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if not math.isfinite(number) or (integer and number != int(number)):
            raise ValueError
    except (TypeError, ValueError):
        kind = "a whole number" if integer else "a number"
        raise InvalidOptionError(f"{name} must be {kind}, got {value!r}.") from None
    return int(number) if integer else number
