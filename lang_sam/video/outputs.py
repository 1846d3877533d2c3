"""A tracking run's files: NAME.mp4 (the frames with masks, boxes, ids and labels drawn, at the
input's frame rate and size) and NAME.jsonl (one line per frame), each through a temporary file.
The video is renamed into place first and the JSON Lines last, so a JSON Lines file that exists
marks a finished run; a run stopped midway, or one that read no frame (a range that holds none, a
file that breaks off), leaves neither and replaces no earlier run's. Shared by ``lang-sam track``
and the app."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lang_sam.families.base import TrackedFrame
from lang_sam.io.files import remove_leftovers, write_atomically
from lang_sam.video.frames import VideoFrames, VideoWriter
from lang_sam.video.tracker import draw_tracked


@dataclass
class TrackSummary:
    """What a run wrote: the two paths, the frames, and per track id its label, the frames it was
    seen on (first, last, count) and its best score."""

    video: Path
    lines: Path
    frames: int = 0
    tracks: dict[int, dict] = field(default_factory=dict)

    def add(self, frame: TrackedFrame) -> None:
        self.frames += 1
        for item in frame.objects:
            seen = self.tracks.setdefault(item.id, {"label": item.label, "first": frame.index, "last": frame.index,
                                                     "frames": 0, "best_score": item.score})
            seen["last"], seen["frames"] = frame.index, seen["frames"] + 1
            seen["best_score"] = max(seen["best_score"], item.score)


def write_tracking(results: Iterable[TrackedFrame], frames: VideoFrames, out: Path,
                   on_frame: Callable[[TrackSummary], None] | None = None) -> TrackSummary:
    """Write out/NAME.mp4 and out/NAME.jsonl from results (NAME: frames.name); on_frame is called
    after each frame (progress)."""
    out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    summary = TrackSummary(out / f"{frames.name}.mp4", out / f"{frames.name}.jsonl")

    def write_lines(file) -> None:
        with VideoWriter(summary.video, frames.fps / frames.stride, frames.size) as writer:
            for result in results:
                writer.write(draw_tracked(result), result.time)
                file.write((json.dumps(result.to_json()) + "\n").encode())
                summary.add(result)
                if on_frame is not None:
                    on_frame(summary)

    write_atomically(summary.lines, write_lines)
    return summary
