"""Video frames in and out, one at a time: never a whole video in memory.

VideoFrames reads a video file (MP4, MOV, WebM, MKV, AVI: anything PyAV's FFmpeg decodes), a
folder of images (its own files, in natural order: frame2 before frame10) or an iterable of
(H, W, 3) uint8 RGB arrays, and yields Frame(index, time, image) as it decodes. A file's times come
from each frame's presentation timestamp, so variable frame rates keep their real times; its
display rotation (the display matrix phones write) is applied, so frames come out upright.
Mirroring in a display matrix is not applied (PyAV reports only the rotation). A range with no
frame in it is an error, not an empty video: a start past a file's or folder's length when it
opens, any other range when it has been read through. A file that breaks off (a download cut short)
is an error naming the first frame that could not be read, never a silently shorter video.

VideoWriter writes frames to an H.264 MP4 (libx264; MPEG-4 Part 2 where PyAV's FFmpeg has no
libx264) through a temporary file that is renamed when it closes, so a stopped run leaves no half
video, and a writer given no frame replaces nothing. yuv420p (what browsers play) needs an even
width and height: an odd one gets one more column or row, a copy of the last.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lang_sam.errors import InvalidImageError, InvalidOptionError
from lang_sam.io.files import FILE_MODE, TEMPORARY_SUFFIX
from lang_sam.io.images import IMAGE_SUFFIXES, load_image

VideoInput = str | Path | Iterable[np.ndarray]
DEFAULT_FPS = 30.0  # frame rate of image folders and arrays when none is given
WRITER_CLOCK = 90_000  # ticks per second of the written timestamps (MPEG's 90 kHz clock)


class Frame(NamedTuple):
    """One decoded frame: index (from the video's first frame, 0-based), time (seconds from the
    first frame) and image ((H, W, 3) uint8 RGB, upright)."""

    index: int
    time: float
    image: np.ndarray


class VideoFrames:
    """The frames of video, read lazily, between start and end seconds, every stride-th one.

    video: a video file, a folder of images or an iterable of (H, W, 3) uint8 arrays (read once);
    fps: the frame rate of a folder or arrays (default 30), which their times are counted in; a
    file has its own. Opening checks the input and reads its first frame (size, rotation), so a
    bad video fails here, before any model loads. name: what outputs are called (a path's stem).
    A file's frames before start are decoded and dropped (never seeked to), so indices count from
    the video's first frame.
    """

    def __init__(self, video: VideoInput, start: float = 0.0, end: float | None = None, stride: int = 1,
                 fps: float | None = None) -> None:
        self.start, self.end, self.stride = _check_range(start, end, stride)
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0):
            raise InvalidOptionError(f"fps must be a positive number of frames per second, got {fps!r}.")
        self._iterator: Iterator[np.ndarray] | None = None
        self._images: list[Path] = []
        self._file: Path | None = None
        self.length: float | None = None  # seconds, as the file says or the folder's count gives; arrays: unknown
        if isinstance(video, (str, Path)):
            path = Path(video)
            self.name = path.stem if path.is_file() else path.name
            self._label = path.name
            if path.is_dir():
                self._images = folder_images(path)
                first = load_image(self._images[0])
                self.fps = float(fps or DEFAULT_FPS)
                self.length = len(self._images) / self.fps
            elif path.is_file():
                if fps is not None:
                    raise InvalidOptionError(f"fps is for folders and arrays; {path} has its own frame rate.")
                self._file = path
                first, self.fps, self.length = _probe(path)
            else:
                raise InvalidImageError(f"{path} does not exist; give a video file, a folder of images or frames as arrays.")
            _check_start_within(self.start, self.length, self._label)
        else:
            self.name, self._label = "video", "the frames given"
            iterator = iter(video)
            try:
                first = load_image(next(iterator))
            except StopIteration:
                raise InvalidImageError("The frames given are empty: give at least one (H, W, 3) uint8 image.") from None
            self._iterator = chain([first], iterator)
            self.fps = float(fps or DEFAULT_FPS)
        self.size: tuple[int, int] = first.shape[:2]

    def __iter__(self) -> Iterator[Frame]:
        kept, before, after = 0, None, None  # the times of the last frame before start, the first at or after end
        for frame in self._decode():
            if frame.time < self.start:
                before = frame.time
                continue
            if self.end is not None and frame.time >= self.end:
                after = frame.time
                break
            if kept % self.stride == 0:
                yield frame
            kept += 1
        if not kept and (before, after) != (None, None):  # frames were read, none in range (arrays read again: none)
            raise InvalidOptionError(self._empty_range_message(before, after))

    def _empty_range_message(self, before: float | None, after: float | None) -> str:
        """Why no frame was yielded, with the frames nearest the range."""
        where = f"at or after {self.start:g} s" if self.end is None else f"between {self.start:g} s and {self.end:g} s"
        if after is None:
            nearest = f"its last frame is at {before:g} s"
        elif before is None:
            nearest = f"its first frame is at {after:g} s"
        else:
            nearest = f"the nearest frames are at {before:g} s and {after:g} s"
        return f"No frame of {self._label} lies {where} ({nearest}); give a range that holds at least one frame."

    def _decode(self) -> Iterator[Frame]:
        if self._file is not None:
            yield from _decode_file(self._file)
            return
        if self._iterator is not None:
            source, self._iterator = self._iterator, iter(())  # arrays can be read once
            images: Iterable = source
        else:
            images = (load_image(path) for path in self._images)
        for index, image in enumerate(images):
            array = load_image(image)
            if array.shape[:2] != self.size:
                raise InvalidImageError(
                    f"Frame {index} is {array.shape[1]}x{array.shape[0]}, but the first frame is "
                    f"{self.size[1]}x{self.size[0]}; every frame of a video has the same size."
                )
            yield Frame(index, index / self.fps, array)


def folder_images(folder: Path) -> list[Path]:
    """The image files directly in folder, in natural order (frame2 before frame10)."""
    images = [path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise InvalidImageError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); give a folder of frames or a video file.")
    return sorted(images, key=lambda path: [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)])


def _check_start_within(start: float, length: float | None, label: str) -> None:
    """Refuse, when the video opens, a start at or past its end (when its length is known)."""
    if length is not None and start >= length:
        raise InvalidOptionError(f"start ({start} s) is past the end of {label} ({length:g} s long); give a start "
                                 "before its end.")


def _check_range(start: float, end: float | None, stride: int) -> tuple[float, float | None, int]:
    for name, value in (("start", start), ("end", end)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
            raise InvalidOptionError(f"{name} must be a number of seconds >= 0, got {value!r}.")
    if end is not None and end <= start:
        raise InvalidOptionError(f"end ({end} s) must come after start ({start} s).")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InvalidOptionError(f"stride must be a whole number >= 1 (keep every stride-th frame), got {stride!r}.")
    return float(start), None if end is None else float(end), stride


def _open_video(path: Path):
    """The open container, its first video stream and that stream's frame rate; an unreadable
    file or one without video is an InvalidImageError that says which."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise InvalidImageError(f"{path} is not a video PyAV can read ({_reason(error)}); check the file is complete.") from None
    if not container.streams.video:
        kinds = ", ".join(sorted({stream.type for stream in container.streams})) or "no streams"
        container.close()
        raise InvalidImageError(f"{path} has no video stream (it holds {kinds}); give a video file.")
    stream = container.streams.video[0]
    # Not frame threading ("AUTO"/"FRAME"): it reports a frame's decoding error frames later, and
    # never for the last frames of a file, so a cut file would read as a whole shorter one.
    stream.thread_type = "SLICE"
    rate = float(stream.average_rate or stream.guessed_rate or stream.base_rate or DEFAULT_FPS)
    return container, stream, rate


def _probe(path: Path) -> tuple[np.ndarray, float, float | None]:
    """The first frame of a video file (upright), its frame rate and its length in seconds (None
    when the file does not say)."""
    import av

    container, stream, rate = _open_video(path)
    with container:
        try:
            decoded = next(container.decode(stream), None)
        except av.error.FFmpegError as error:
            raise InvalidImageError(f"{path}: the first frame could not be decoded ({_reason(error)}); "
                                    "the file is damaged or cut short.") from None
        if decoded is None:
            raise InvalidImageError(f"{path} has a video stream but no frames could be decoded from it.")
        return _upright(decoded.to_ndarray(format="rgb24"), decoded.rotation), rate, _declared_length(container, stream)


def _declared_length(container, stream) -> float | None:
    """The video stream's length in seconds as the file declares it, else the container's (which
    may count a longer audio stream: a later end, never an earlier one)."""
    import av

    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None


class _PacketLog:
    """What a file's demuxer gave, to tell a file that ends where it should from one cut short."""

    def __init__(self) -> None:
        self.count = 0
        self.last_corrupt = False
        self.last_end: int | None = None

    def note(self, packet) -> None:
        if not packet.size:  # the flush packet at the end
            return
        self.count += 1
        self.last_corrupt = bool(packet.is_corrupt)
        self.last_end = None if packet.pos is None or packet.pos < 0 else packet.pos + packet.size

    def cut_short(self, stream, file_size: int) -> str | None:
        """Why the video ended early, or None: its last packet was read only in part (the file ends
        inside it), or the file ends right after a packet while its index lists more frames."""
        if self.last_corrupt:
            return "its data ends inside that frame"
        if stream.frames and self.count < stream.frames and self.last_end == file_size:
            return f"the file's index lists {stream.frames} frames, but its data ends after {self.count}"
        return None


def _decode_file(path: Path) -> Iterator[Frame]:
    """The frames of a video file, decoded one at a time; decoding errors and a file that breaks
    off are InvalidImageErrors naming the first frame that could not be read."""
    import av

    container, stream, rate = _open_video(path)
    with container:
        origin = stream.start_time or 0
        index = -1
        packets = _PacketLog()
        try:
            for packet in container.demux(stream):
                packets.note(packet)
                for decoded in packet.decode():
                    index += 1
                    time = index / rate if decoded.pts is None else float((decoded.pts - origin) * stream.time_base)
                    yield Frame(index, time, _upright(decoded.to_ndarray(format="rgb24"), decoded.rotation))
        except av.error.FFmpegError as error:
            raise InvalidImageError(f"{path}: frame {index + 1} could not be decoded ({_reason(error)}); "
                                    "the file is damaged or cut short.") from None
        reason = packets.cut_short(stream, path.stat().st_size)
        if reason is not None:
            broken = index if packets.last_corrupt else index + 1  # a frame from a partial packet was decoded: it broke there
            raise InvalidImageError(f"{path}: frame {broken} could not be read ({reason}); the file is damaged or cut "
                                    "short: use a complete copy.")
    if index < 0:
        raise InvalidImageError(f"{path} has a video stream but no frames could be decoded from it.")


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def _upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """The frame as it is displayed: rotated counter-clockwise by the display matrix's degrees
    (rounded to a quarter turn)."""
    turns = round((rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


class VideoWriter:
    """Frames to an MP4 at path, through a temporary file renamed into place by close().

    fps: the nominal frame rate; size: (H, W) of every frame. write() takes each frame's time
    (seconds), so the output keeps the input's timing (strides and variable rates included); without
    times, frames are 1/fps apart. Used as a context manager, an exception removes the temporary
    file and leaves path as it was.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]) -> None:
        import av

        self.path = Path(path)
        self.size = size
        self.fps = fps
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=TEMPORARY_SUFFIX, dir=self.path.parent)
        os.close(handle)
        self._temporary = Path(temporary)
        self._container = av.open(temporary, "w", format="mp4")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(100_000))
        height, width = size
        self._padding = (height % 2, width % 2)
        self._stream.height, self._stream.width = height + self._padding[0], width + self._padding[1]
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = Fraction(1, WRITER_CLOCK)
        self._last_pts = -1
        self._count = 0

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """Encode one (H, W, 3) uint8 RGB frame shown at time seconds."""
        import av

        if image.shape != (*self.size, 3) or image.dtype != np.uint8:
            raise InvalidImageError(f"VideoWriter takes ({self.size[0]}, {self.size[1]}, 3) uint8 frames, "
                                    f"got {image.shape} {image.dtype}.")
        if any(self._padding):
            image = np.pad(image, ((0, self._padding[0]), (0, self._padding[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        seconds = self._count / self.fps if time is None else time
        frame.pts = self._last_pts = max(round(seconds * WRITER_CLOCK), self._last_pts + 1)
        frame.time_base = Fraction(1, WRITER_CLOCK)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._count += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file to path; with no frame written, path is left
        as it was (an earlier run's video is not replaced by an empty one) and that is an error."""
        if not self._count:
            self.abort()
            raise InvalidImageError(f"There was no frame to write to {self.path}; it was left as it was.")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            os.chmod(self._temporary, FILE_MODE)
            os.replace(self._temporary, self.path)
        finally:
            self._temporary.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop what was written: the temporary file goes, path is untouched."""
        try:
            self._container.close()
        finally:
            self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
