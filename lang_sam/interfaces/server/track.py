"""POST /track: a video and a prompt (or objects clicked on its first frame) in, JSON Lines out,
one per frame as it finishes (streamed).

A LitAPI of its own (streaming, one request at a time per worker) beside the /predict one; its
worker loads the video model and the detector on first use. Each line is what ``lang-sam track``
writes to NAME.jsonl: frame index, time, and per object id, label, score, box and COCO RLE mask.
A request the server cannot take (no prompt or clicks, a model it does not serve or that does not
track video, a video that does not open, clicks outside its first frame) gets its 4xx from the request guard, which runs TrackRequestCheck before the stream starts
(a streamed answer has sent its 200 by the time a worker reads the request); a failure midway ends
the stream with {"error": "..."}. Messages name the video by the client's file name. A client that
leaves stops the tracking before the next frame (the guard's cancel flag, cancel.py), and the
upload's folder is removed then; the server removes all of them when it stops.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import litserve as ls
from fastapi import HTTPException

from lang_sam.errors import InvalidOptionError, LangSAMError
from lang_sam.interfaces.models import ModelPool, served_detectors, served_sam_types
from lang_sam.interfaces.server.api import LOGGER, log_to_stderr
from lang_sam.interfaces.server.cancel import ServerFiles, request_token
from lang_sam.interfaces.server.validation import LIMIT_FLAGS, Limits, TrackRequest, over_limit, parse_track_request
from lang_sam.settings import Settings
from lang_sam.video.clicks import check_clicks
from lang_sam.video.frames import Frame, VideoFrames

TRACK_PATH = "/track"
UPLOAD_NAME_CHARACTERS = 200  # of the client's file name, in messages


class TrackAPI(ls.LitAPI):
    """Streams lang_sam.video.tracker's frames of one uploaded video as JSON lines, until the video
    ends or its client leaves (the request guard's cancel flag, looked at before each frame)."""

    def __init__(self, settings: Settings, sam_types: Sequence[str] | None = None, detectors: Sequence[str] | None = None,
                 limits: Limits | None = None, files: ServerFiles | None = None):
        """limits: what one request may ask (default Limits()); files: the server run's folder
        (uploads, cancel flags); None: one of this worker's own."""
        super().__init__(max_batch_size=1, api_path=TRACK_PATH, stream=True)
        self.settings = settings
        self.sam_types = served_sam_types(settings, sam_types)
        self.detectors = served_detectors(settings, detectors)
        self.limits, self.files = limits or Limits(), files

    def setup(self, device: str) -> None:
        log_to_stderr()
        self.pool = ModelPool(replace(self.settings, device=self.settings.device or device), allowed=self.sam_types,
                              detectors=self.detectors)
        if self.files is None:  # a LitAPI used without build_server
            self.files = ServerFiles.create()

    def decode_request(self, request) -> tuple[TrackRequest, VideoFrames, Path, str | None]:
        try:
            return (*open_track_request(request, self.pool, self.limits, self.files), request_token(request))
        except LangSAMError as error:  # the guard checked it already: only a race gets here
            raise HTTPException(status_of(error), str(error)) from None

    def predict(self, inputs) -> Iterator[dict]:
        request, frames, folder, token = inputs
        try:
            yield from self._frames_until_cancelled(request, frames, token)
        except LangSAMError as error:
            yield {"error": naming_the_upload(str(error), folder, request.upload_name)}
        except Exception as error:  # noqa: BLE001 - the stream ends with the reason; the server stays up
            LOGGER.exception("lang-sam: /track failed")
            yield {"error": naming_the_upload(f"Tracking failed ({type(error).__name__}: {error}).", folder, request.upload_name)}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            self.files.forget(token)

    def _frames_until_cancelled(self, request: TrackRequest, frames: VideoFrames, token: str | None) -> Iterator[dict]:
        """Each frame's JSON; the cancel flag is looked at before each frame's work, so a client
        gone costs at most the frame in progress."""
        if request.clicks:
            tracked = self.pool.follow_clicks(frames, request.clicks, request.sam_type, request.click_labels)
        else:
            tracked = self.pool.track(frames, request.prompt, request.sam_type, request.detector, **request.options)
        sent = 0
        try:
            while not self.files.cancelled(token):
                frame = next(tracked, None)
                if frame is None:
                    return
                yield frame.to_json()
                sent += 1
            LOGGER.info("lang-sam: a /track client left after %d frames; its tracking stopped", sent)
        finally:
            tracked.close()  # the video file is closed now, not when the generator is collected

    def encode_response(self, outputs: Iterator[dict]) -> Iterator[dict]:
        yield from outputs  # LitServe writes each dict as one JSON line


def open_track_request(payload, pool: ModelPool, limits: Limits, files: ServerFiles) -> tuple[TrackRequest, VideoFrames, Path]:
    """The checked request (against the pool's served video models and limits), its video opened
    (first frame read) from a file in a new upload folder, its clicks checked against that frame,
    and that folder (the caller removes it). Errors name the upload by the client's file name,
    never the server's path."""
    parsed = parse_track_request(payload, pool.check, pool.check_detector, limits)
    pool.check_video_type(parsed.sam_type)
    folder = files.upload_folder()
    try:
        video = folder / "upload"
        video.write_bytes(parsed.video)
        frame_options = {name: parsed.options.pop(name) for name in ("start", "end", "stride") if name in parsed.options}
        try:
            frames = LimitedFrames(video, limits.max_track_frames, **frame_options)
            check_frame_count(video, limits, **frame_options)
            if parsed.clicks:
                check_clicks(parsed.clicks, frames.size)
        except LangSAMError as error:
            raise type(error)(naming_the_upload(str(error), folder, parsed.upload_name)) from None
        return parsed, frames, folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def naming_the_upload(message: str, folder: Path, upload_name: str | None) -> str:
    """message with the server's temporary path of the upload replaced by the client's file name:
    the client knows its video by that name, and the server's folders are none of its business."""
    name = f'"{upload_name[:UPLOAD_NAME_CHARACTERS]}"' if upload_name else "The uploaded video"
    return message.replace(str(folder / "upload"), name).replace(str(folder), name)


class TrackRequestCheck:
    """The request guard's check of a /track form: the fields, the models named, the limits, and
    that the video opens; raises the LangSAMError that says what is wrong. No model is loaded."""

    def __init__(self, settings: Settings, sam_types: Sequence[str] | None = None, detectors: Sequence[str] | None = None,
                 limits: Limits | None = None, files: ServerFiles | None = None):
        self.pool = ModelPool(settings, allowed=served_sam_types(settings, sam_types), detectors=detectors)
        self.limits, self.files = limits or Limits(), files or ServerFiles.create()

    def __call__(self, payload) -> None:
        _, _, folder = open_track_request(payload, self.pool, self.limits, self.files)
        shutil.rmtree(folder, ignore_errors=True)


def check_frame_count(video: Path, limits: Limits, start: float = 0.0, end: float | None = None, stride: int = 1) -> None:
    """Refuse, before the stream starts, a video whose container says it holds more frames between
    start and end, every stride-th, than limits.max_track_frames; a container that does not say is
    stopped by LimitedFrames as it goes over."""
    frames = _frames_in_range(video, start, end)
    if frames is not None and math.ceil(frames / stride) > limits.max_track_frames:
        raise over_limit("frames to track (as its container counts them, after start, end and stride; send a "
                         "shorter range or a larger stride)", math.ceil(frames / stride), limits, "max_track_frames")


def _frames_in_range(video: Path, start: float, end: float | None) -> int | None:
    """The frames of video's first video stream from start to end seconds, by the container's frame
    count or its duration and frame rate; None when it gives neither."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        else:
            seconds = container.duration / 1_000_000 if container.duration else None
        if start == 0 and end is None and stream.frames:
            return int(stream.frames)
        if seconds is None or not rate:
            return None
        return max(0, round((min(seconds, end if end is not None else seconds) - start) * rate))


class LimitedFrames(VideoFrames):
    """VideoFrames that end the tracking with the limit's error past limit frames: the backstop of
    check_frame_count for videos whose container does not count them."""

    def __init__(self, video: Path, limit: int, **frame_options) -> None:
        super().__init__(video, **frame_options)
        self.limit = limit

    def __iter__(self) -> Iterator[Frame]:
        for kept, frame in enumerate(super().__iter__()):
            if kept == self.limit:
                raise InvalidOptionError(
                    f"The video holds more than {self.limit} frames to track (after start, end and stride); this server "
                    f"tracks at most {self.limit} per request. Send a shorter range or a larger stride, or start the "
                    f"server with a larger {LIMIT_FLAGS['max_track_frames']}.")
            yield frame


def status_of(error: LangSAMError) -> int:
    return 422 if isinstance(error, InvalidOptionError) else 400
