"""lang-sam track: what a text prompt names, or the objects clicked on the first frame, followed through a video."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from lang_sam.errors import InvalidOptionError
from lang_sam.interfaces.cli import common
from lang_sam.io.files import check_output_folder

if TYPE_CHECKING:
    from lang_sam.families.base import TrackedFrame
    from lang_sam.settings import Settings
    from lang_sam.video.frames import VideoFrames

NAME = "track"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    tracking = subparsers.add_parser(
        NAME,
        help="track what a text prompt names, or objects you click, through a video",
        description="Detect the prompt's classes on the first frame and every --redetect-every frames, follow each "
        "object with SAM 2.1 video (or EdgeTAM's: --sam-type edgetam) in between, and write OUT/NAME.mp4 (masks, boxes and \"#id label\" drawn in each "
        "track's colour, the input's frame times kept) and OUT/NAME.jsonl (a line per frame: frame index, time, and "
        "per object id, label, score, box, COCO RLE mask), each through a temporary file renamed at the end. A "
        "track unseen for --max-lost frames ends; an object seen again later gets a new id. VIDEO: a video file or "
        "a folder of frames. With SAM 3 (--sam-type sam3, or a Sam3VideoModel folder as --sam-checkpoint) no detector "
        "runs: SAM 3 video detects the classes on every frame and keeps its own ids, --box-threshold is the score an "
        "object needs to be written, an object unwritten for --max-lost frames ends, and --redetect-every, "
        "--iou-threshold and --text-threshold do not apply. Instead of --prompt, --points \"x,y;x,y\" clicks one object on the "
        "first frame read (as predict takes them; --point-labels \"1,0\": 1 on the object, 0 off it, default all 1); "
        "repeat --points for more objects (ids 1, 2, ... in order), and --point-labels and --label once per --points "
        "when given. The video model alone follows them (no detector; --sam-type sam3 by default, or edgetam, a SAM 2.1 "
        "name, or a video model folder as --sam-checkpoint), each written as \"#id label\" with score 1.0 on the frames "
        "its mask is on; the detector, thresholds, --redetect-every, --max-lost and --iou-threshold do not apply. "
        "Needs the video extra: pip install 'lang-sam[video]'.",
    )
    tracking.add_argument("video", type=Path, help="video file (MP4, MOV, WebM, ...) or folder of frame images")
    tracking.add_argument("--prompt", "-p", help='classes separated by commas, e.g. "car, person" (or give --points)')
    tracking.add_argument("--points", action="append", help='one object\'s clicks on the first frame, "x,y;x,y" in pixels; '
                          "repeat for more objects")
    tracking.add_argument("--point-labels", action="append", help='labels of one --points, "1,0": 1 object, 0 background '
                          "(default: all 1); once per --points when given")
    tracking.add_argument("--label", action="append", help='class name of one --points object (default: "object"); '
                          "once per --points when given")
    tracking.add_argument("--out", "-o", type=Path, default=Path("lang-sam-track"), help="output folder (default: %(default)s)")
    tracking.add_argument("--redetect-every", type=int, default=10, help="run the detector every N frames read (default: %(default)s)")
    tracking.add_argument("--max-lost", type=int, default=30, help="frames a track may go unseen before it ends (default: %(default)s)")
    tracking.add_argument("--iou-threshold", type=float, default=0.5, help="mask IoU at which a detection continues a track (default: %(default)s)")
    tracking.add_argument("--start", type=float, default=0.0, help="first second to read (default: %(default)s)")
    tracking.add_argument("--end", type=float, help="stop at this second (default: the end)")
    tracking.add_argument("--stride", type=int, default=1, help="read every N-th frame (default: %(default)s)")
    tracking.add_argument("--fps", type=float, help="frame rate of a folder of frames (default: 30)")
    common.add_pipeline_arguments(tracking)


def run(args: argparse.Namespace) -> int:
    common.require("av", "video")
    from lang_sam.video.outputs import write_tracking

    if (args.prompt is None) == (args.points is None):
        raise InvalidOptionError('Say what to track: --prompt "car, person", or --points "x,y;x,y" clicked on the first frame '
                                 "(repeat --points for more objects), one or the other.")
    if args.points is None and (args.point_labels or args.label):
        raise InvalidOptionError("--point-labels and --label go with --points.")
    frames, results = (_clicked if args.points else _prompted)(args)
    bar = tqdm(desc=f"lang-sam track {frames.name}", unit="frame")
    try:
        summary = write_tracking(results, frames, args.out, on_frame=lambda _: bar.update())
    except KeyboardInterrupt:
        print(f"lang-sam: interrupted; nothing was written to {args.out}.", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print(f"lang-sam: {summary.frames} frames, {len(summary.tracks)} tracks; wrote {summary.video} and {summary.lines}",
          file=sys.stderr)
    return 0


def _prompted(args: argparse.Namespace) -> tuple[VideoFrames, Iterator[TrackedFrame]]:
    """The frames and the tracker's results for --prompt; what needs no model is checked before any loads."""
    from functools import partial

    from lang_sam.detector.prompts import parse_classes
    from lang_sam.families.detectors import load_detector
    from lang_sam.families.loading import load_video_segmenter
    from lang_sam.video.tracker import check_track_options, track

    classes = parse_classes(args.prompt)  # a prompt that names nothing fails before anything loads
    check_track_options(redetect_every=args.redetect_every, max_lost=args.max_lost, iou_threshold=args.iou_threshold,
                        box_threshold=args.box_threshold, text_threshold=args.text_threshold)
    frames = _frames(args)
    settings = _settings(args)
    segmenter = load_video_segmenter(settings.sam_type, settings.sam_checkpoint, settings.device, settings.dtype,
                                     settings.checkpoint_dir)
    detector = partial(load_detector, settings.detector, settings.device, settings.dtype)  # loaded unless SAM 3 video
    return frames, track(frames, classes, detector, segmenter, redetect_every=args.redetect_every, max_lost=args.max_lost,
                         iou_threshold=args.iou_threshold, box_threshold=args.box_threshold, text_threshold=args.text_threshold)


def _clicked(args: argparse.Namespace) -> tuple[VideoFrames, Iterator[TrackedFrame]]:
    """The frames and the followed objects for --points (with --point-labels and --label), the clicks
    checked against the first frame before the video model loads."""
    from lang_sam.families.loading import load_click_tracker
    from lang_sam.io.prompt_text import parse_coordinates, parse_point_labels
    from lang_sam.video.clicks import CLICKED_LABEL, DEFAULT_CLICK_TRACKER, check_clicks, clicked_objects, follow_clicks

    for flag, given in (("--point-labels", args.point_labels), ("--label", args.label)):
        if given is not None and len(given) != len(args.points):
            raise InvalidOptionError(f"Got {len(args.points)} --points but {len(given)} {flag}; give {flag} once per --points, "
                                     "in the same order, or leave it out.")
    clicks, names = clicked_objects([parse_coordinates(text, 2, "--points") for text in args.points],
                                    None if args.point_labels is None else
                                    [parse_point_labels(text, "--point-labels") for text in args.point_labels],
                                    args.label or CLICKED_LABEL)
    frames = _frames(args)
    check_clicks(clicks, frames.size)
    settings = _settings(args)
    tracker = load_click_tracker(settings.sam_checkpoint or settings.sam_type or DEFAULT_CLICK_TRACKER, settings.device,
                                 settings.dtype, settings.checkpoint_dir)
    return frames, follow_clicks(frames, clicks, tracker, label=names)


def _frames(args: argparse.Namespace) -> VideoFrames:
    """The video opened (its first frame read) between --start and --end, every --stride-th frame."""
    from lang_sam.video.frames import VideoFrames

    return VideoFrames(args.video, start=args.start, end=args.end, stride=args.stride, fps=args.fps)


def _settings(args: argparse.Namespace) -> Settings:
    """The settings, with the output folder and the device and dtype checked before a model loads."""
    from lang_sam.devices import resolve_device, resolve_dtype

    check_output_folder(args.out)
    settings = common.settings(args)
    resolve_dtype(settings.dtype, resolve_device(settings.device))
    return settings
