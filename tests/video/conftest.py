"""Synthetic videos written with PyAV itself (moving squares), and the tiny models of the video tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

SQUARE_COLOURS = ((230, 40, 40), (40, 200, 60))


def moving_squares(count: int, height: int = 48, width: int = 64, size: int = 12) -> list[np.ndarray]:
    """count RGB frames: a red square sliding right and a green one sliding left on grey."""
    frames = []
    for t in range(count):
        frame = np.full((height, width, 3), 90, np.uint8)
        for (top, left), colour in zip(((4, 2 + 2 * t), (height - size - 4, width - size - 2 - 2 * t)), SQUARE_COLOURS):
            frame[top:top + size, max(left, 0):max(left + size, 0)] = colour
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10, times: list[float] | None = None,
                codec: str = "libx264", pixel_format: str = "yuv420p", rotation: int | None = None) -> Path:
    """frames to path with PyAV directly (not lang-sam's writer): frame i at times[i] seconds, else i / fps."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pixel_format
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = round(1000 * (times[index] if times else index / fps))
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_with_pyav(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Every frame of a video and its time in seconds, as PyAV decodes them (no rotation applied)."""
    import av

    with av.open(str(path)) as container:
        decoded = list(container.decode(container.streams.video[0]))
        return [frame.to_ndarray(format="rgb24") for frame in decoded], [float(frame.time) for frame in decoded]
