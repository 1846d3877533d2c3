"""POST /track: a video and a prompt in, JSON Lines out, one per frame as it finishes (streamed).

A LitAPI of its own (streaming, one request at a time per worker) beside the /predict one; its
worker loads the video model and the detector on first use. Each line is what ``lang-sam track``
writes to NAME.jsonl: frame index, time, and per object id, label, score, box and COCO RLE mask.
A request the server cannot take (no prompt, a model it does not serve, a video that does not
open) gets its 4xx from the request guard, which runs TrackRequestCheck before the stream starts
(a streamed answer has sent its 200 by the time a worker reads the request); a failure midway ends
the stream with {"error": "..."}.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import litserve as ls
from fastapi import HTTPException

from lang_sam.errors import InvalidOptionError, LangSAMError
from lang_sam.interfaces.models import ModelPool, served_detectors, served_sam_types
from lang_sam.interfaces.server.validation import TrackRequest, parse_track_request
from lang_sam.settings import Settings

TRACK_PATH = "/track"
LOGGER = logging.getLogger("lang_sam.server")


class TrackAPI(ls.LitAPI):
    """Streams lang_sam.video.tracker's frames of one uploaded video as JSON lines."""

    def __init__(self, settings: Settings, sam_types: Sequence[str] | None = None, detectors: Sequence[str] | None = None):
        super().__init__(max_batch_size=1, api_path=TRACK_PATH, stream=True)
        self.settings = settings
        self.sam_types = served_sam_types(settings, sam_types)
        self.detectors = served_detectors(settings, detectors)

    def setup(self, device: str) -> None:
        self.pool = ModelPool(replace(self.settings, device=self.settings.device or device), allowed=self.sam_types,
                              detectors=self.detectors)

    def decode_request(self, request) -> tuple[TrackRequest, object, Path]:
        try:
            return open_track_request(request, self.pool)
        except LangSAMError as error:  # the guard checked it already: only a race gets here
            raise HTTPException(status_of(error), str(error)) from None

    def predict(self, inputs) -> Iterator[dict]:
        request, frames, folder = inputs
        try:
            for frame in self.pool.track(frames, request.prompt, request.sam_type, request.detector, **request.options):
                yield frame.to_json()
        except LangSAMError as error:
            yield {"error": str(error)}
        except Exception as error:  # noqa: BLE001 - the stream ends with the reason; the server stays up
            LOGGER.exception("lang-sam: /track failed")
            yield {"error": f"Tracking failed ({type(error).__name__}: {error})."}
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def encode_response(self, outputs: Iterator[dict]) -> Iterator[dict]:
        yield from outputs  # LitServe writes each dict as one JSON line


def open_track_request(payload, pool: ModelPool) -> tuple[TrackRequest, object, Path]:
    """The checked request (against the pool's served models), its video opened (first frame read)
    from a temporary file, and that file's folder (the caller removes it)."""
    from lang_sam.video.frames import VideoFrames

    parsed = parse_track_request(payload, pool.check, pool.check_detector)
    folder = Path(tempfile.mkdtemp(prefix="lang-sam-track-"))
    try:
        video = folder / "upload"
        video.write_bytes(parsed.video)
        frame_options = {name: parsed.options.pop(name) for name in ("start", "end", "stride") if name in parsed.options}
        return parsed, VideoFrames(video, **frame_options), folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


class TrackRequestCheck:
    """The request guard's check of a /track form: the fields, the models named, and that the video
    opens; raises the LangSAMError that says what is wrong. No model is loaded."""

    def __init__(self, settings: Settings, sam_types: Sequence[str] | None = None, detectors: Sequence[str] | None = None):
        self.pool = ModelPool(settings, allowed=served_sam_types(settings, sam_types), detectors=detectors)

    def __call__(self, payload) -> None:
        _, _, folder = open_track_request(payload, self.pool)
        shutil.rmtree(folder, ignore_errors=True)


def status_of(error: LangSAMError) -> int:
    return 422 if isinstance(error, InvalidOptionError) else 400
