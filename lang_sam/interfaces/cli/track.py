"""lang-sam track: what a text prompt names followed through a video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm

from lang_sam.interfaces.cli import common
from lang_sam.io.files import check_output_folder

NAME = "track"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    tracking = subparsers.add_parser(
        NAME,
        help="track what a text prompt names through a video",
        description="Detect the prompt's classes on the first frame and every --redetect-every frames, follow each "
        "object with SAM 2.1 video (or EdgeTAM's: --sam-type edgetam) in between, and write OUT/NAME.mp4 (masks, boxes and \"#id label\" drawn in each "
        "track's colour, the input's frame times kept) and OUT/NAME.jsonl (a line per frame: frame index, time, and "
        "per object id, label, score, box, COCO RLE mask), each through a temporary file renamed at the end. A "
        "track unseen for --max-lost frames ends; an object seen again later gets a new id. VIDEO: a video file or "
        "a folder of frames. With SAM 3 (--sam-type sam3, or a Sam3VideoModel folder as --sam-checkpoint) no detector "
        "runs: SAM 3 video detects the classes on every frame and keeps its own ids, --box-threshold is the score an "
        "object needs to be written, an object unwritten for --max-lost frames ends, and --redetect-every, "
        "--iou-threshold and --text-threshold do not apply. Needs the video extra: pip install 'lang-sam[video]'.",
    )
    tracking.add_argument("video", type=Path, help="video file (MP4, MOV, WebM, ...) or folder of frame images")
    tracking.add_argument("--prompt", "-p", required=True, help='classes separated by commas, e.g. "car, person"')
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
    from functools import partial

    from lang_sam.detector.prompts import parse_classes
    from lang_sam.devices import resolve_device, resolve_dtype
    from lang_sam.families.detectors import load_detector
    from lang_sam.families.loading import load_video_segmenter
    from lang_sam.video.frames import VideoFrames
    from lang_sam.video.outputs import write_tracking
    from lang_sam.video.tracker import check_track_options, track

    classes = parse_classes(args.prompt)  # a prompt that names nothing fails before anything loads
    check_track_options(redetect_every=args.redetect_every, max_lost=args.max_lost, iou_threshold=args.iou_threshold,
                        box_threshold=args.box_threshold, text_threshold=args.text_threshold)
    frames = VideoFrames(args.video, start=args.start, end=args.end, stride=args.stride, fps=args.fps)
    check_output_folder(args.out)
    settings = common.settings(args)
    resolve_dtype(settings.dtype, resolve_device(settings.device))
    segmenter = load_video_segmenter(settings.sam_type, settings.sam_checkpoint, settings.device, settings.dtype,
                                     settings.checkpoint_dir)
    detector = partial(load_detector, settings.detector, settings.device, settings.dtype)  # loaded unless SAM 3 video
    results = track(frames, classes, detector, segmenter, redetect_every=args.redetect_every, max_lost=args.max_lost,
                    iou_threshold=args.iou_threshold, box_threshold=args.box_threshold, text_threshold=args.text_threshold)
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
