"""Peak memory and speed of lang-sam's video tracking over long streams.

For each frame count (default 100 and 1,000), a fresh process streams synthetic 320x240 frames
(two squares sliding across, made as they are read: no video file, no decode cost) through
lang_sam.video.tracker.track with SAM 2.1 video, and reports its peak RSS and frames per second.
The detector is a stand-in that returns the two squares' true boxes (it runs every
--redetect-every frames), so the numbers are the video segmenter's and the tracker's, not a
detector's. Bounded memory shows as the same peak RSS for 100 and 1,000 frames.

Random weights do not follow the squares: their masks match no later detection, so every
detection after the first frame starts a track, and tracks end only when their masks vanish
(--max-lost frames). Memory then grows with the objects alive, not with the frames; --detect-once
runs the detector on the first frame only, holding the objects at two, which isolates what the
frames themselves cost. "largest id" is the largest id reported, "last frame" the objects reported on the last frame.

--tiny: the tiny random SAM 2.1 video of the tests (128 px input, CPU-friendly); otherwise
Sam2VideoConfig()'s real default size (Hiera, 1024 px) with random weights. --family sam3: SAM 3
video's own concept tracking instead (no detector), with --tiny only: the tests' tiny random
model (SAM 3's processor needs CLIP's tokenizer, which cannot be downloaded here).

    python bench/bench_video.py --tiny --frames 100 1000 [--family sam3] [--detect-once]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HEIGHT, WIDTH, SIDE = 240, 320, 40


def frames(count: int):
    """count frames: a red square sliding right and a green one sliding left, on grey."""
    for t in range(count):
        frame = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        frame[30:30 + SIDE, (5 + 2 * t) % (WIDTH - SIDE):][:, :SIDE] = (230, 40, 40)
        frame[150:150 + SIDE, (WIDTH - SIDE - 5 - 2 * t) % (WIDTH - SIDE):][:, :SIDE] = (40, 200, 60)
        yield frame


class SquareDetector:
    """The two squares' boxes, found by colour (a stand-in for a real detector)."""

    name, device, dtype = "squares", torch.device("cpu"), torch.float32

    def preprocess(self, image):
        return image

    def detect(self, images, prompts, box_threshold=0.3, text_threshold=0.25, nms_iou_threshold=None):
        from lang_sam.vocabulary import Detections
        from lang_sam.geometry import mask_to_box

        results = []
        for image, classes in zip(images, prompts):
            pixels = np.asarray(image)
            boxes = [mask_to_box((pixels == colour).all(axis=2)) for colour in ((230, 40, 40), (40, 200, 60))
                     if (pixels == colour).all(axis=2).any()]
            count = len(boxes)
            results.append(Detections(xyxy=np.array(boxes).reshape(-1, 4), image_size=pixels.shape[:2],
                                      box_scores=np.full(count, 0.9), class_ids=np.zeros(count, int), classes=classes))
        return results


def save_model(folder: Path, tiny: bool, family: str) -> None:
    from tests.video.conftest import save_tiny_sam2_video

    if family == "sam3":  # tiny only (main says why)
        from tests.video.test_sam3_video import save_tiny_sam3_video

        save_tiny_sam3_video(folder)
        return
    if tiny:
        save_tiny_sam2_video(folder)
        return
    from transformers import Sam2ImageProcessor, Sam2VideoConfig, Sam2VideoModel, Sam2VideoProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor

    torch.manual_seed(0)
    Sam2VideoModel(Sam2VideoConfig()).eval().save_pretrained(folder)
    Sam2VideoProcessor(Sam2ImageProcessor(), Sam2VideoVideoProcessor()).save_pretrained(folder)


def child(count: int, model: Path, redetect_every: int, device: str, family: str) -> None:
    """One run in this process: print its frames, seconds and peak RSS as one JSON line."""
    from lang_sam.families.loading import load_video_segmenter
    from lang_sam.video.frames import VideoFrames
    from lang_sam.video.tracker import track

    segmenter = load_video_segmenter(checkpoint=model, device=device, dtype="float32")
    started = time.perf_counter()
    done = largest_id = last_frame = 0
    for result in track(VideoFrames(frames(count)), "square", SquareDetector(), segmenter, redetect_every=redetect_every):
        done += 1
        largest_id = max(largest_id, max((item.id for item in result.objects), default=0))
        last_frame = len(result.objects)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": done, "seconds": seconds, "peak_rss_mb": peak_mb, "largest_id": largest_id, "last_frame": last_frame}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny random model instead of the real default size")
    parser.add_argument("--redetect-every", type=int, default=10)
    parser.add_argument("--detect-once", action="store_true", help="the detector on the first frame only (two objects throughout)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--family", choices=["sam2", "sam3"], default="sam2", help="SAM 2.1 video with a detector, or SAM 3 video")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.model, args.redetect_every, args.device, args.family)
        return
    if args.family == "sam3" and not args.tiny:
        parser.error("--family sam3 runs with --tiny here: SAM 3's processor needs CLIP's tokenizer, a download.")
    if args.detect_once:
        if args.family == "sam3":
            parser.error("--detect-once is for SAM 2.1 video: SAM 3 video detects on every frame itself.")
        args.redetect_every = max(args.frames) + 1
    with tempfile.TemporaryDirectory() as folder:
        save_model(Path(folder), args.tiny, args.family)
        detection = "detector on the first frame only" if args.detect_once else f"detector every {args.redetect_every} frames"
        model = f"SAM 2.1 video, {detection}" if args.family == "sam2" else "SAM 3 video (its own detection on every frame)"
        print(f"{model} ({'tiny random' if args.tiny else 'default size, random'}), {WIDTH}x{HEIGHT} frames, "
              f"on {args.device}, torch {torch.__version__}")
        print(f"{'frames':>7} {'seconds':>8} {'frames/s':>9} {'peak RSS MB':>12} {'largest id':>11} {'last frame':>11}")
        for count in args.frames:
            output = subprocess.run([sys.executable, __file__, "--child", str(count), "--model", folder, "--redetect-every",
                                     str(args.redetect_every), "--device", args.device, "--family", args.family],
                                    check=True, capture_output=True, text=True)
            row = json.loads(output.stdout.strip().splitlines()[-1])
            print(f"{row['frames']:>7} {row['seconds']:>8.1f} {row['frames'] / row['seconds']:>9.2f} "
                  f"{row['peak_rss_mb']:>12.0f} {row['largest_id']:>11} {row['last_frame']:>11}")


if __name__ == "__main__":
    main()
