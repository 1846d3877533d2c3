"""Memory under load: many predictions on varied real photos, in process and through the server.

Random vit_b (official architecture and file format) and a tiny random Grounding DINO, top 8 boxes; photos from
../shared/data (COCO val2017 subset and the demo photos) or, without it, the photos in assets/.
Reports RSS after a warm-up and at the end, and the peak (high-water mark);
the target is less than 5% growth after warm-up (no leak through the embedding cache, the
detector, or the server and its workers).

    python bench/bench_soak.py --predictions 200 --mode both
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from lang_sam.devices import cpu_bf16_instructions, describe_cpu

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
PROMPTS = ("person, dog, car", "cat, cup, chair, bottle")
MAX_DETECTIONS = 8  # random detectors keep almost every box; the encoder, not decoding, is what churns


def photos(limit: int = 80) -> list[Path]:
    found = sorted(SHARED.rglob("*.jpg"))[:limit] if SHARED.is_dir() else []
    return found or sorted((ROOT / "assets").glob("*.jpg"))


def write_models(folder: Path) -> tuple[Path, Path]:
    """Random vit_b in its official file name, and a tiny detector folder, as the tests make them."""
    from transformers import BertTokenizer, GroundingDinoImageProcessor, GroundingDinoProcessor

    from lang_sam.registry import SAM_MODELS
    from tests.conftest import bert_vocab_path, random_sam_state_dict, tiny_grounding_dino

    torch.save(random_sam_state_dict(SAM_MODELS["vit_b"].architecture), folder / SAM_MODELS["vit_b"].file_name)
    detector = folder / "detector"
    tiny_grounding_dino().save_pretrained(detector)
    tokenizer = BertTokenizer(vocab=str(bert_vocab_path()), do_lower_case=True)
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer)
    processor.save_pretrained(detector)
    return folder, detector


def memory_of(pids: list[int]) -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB, summed over processes, from /proc."""
    current = peak = 0.0
    for pid in pids:
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        except OSError:
            continue
        current += int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        peak += int(fields.get("VmHWM", "0 kB").split()[0]) / 1024
    return current, peak


def session_pids(session: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) == session:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def soak(predict, count: int, measure) -> dict:
    """Warm-up is one pass over the photos (every image size seen once), at most half the run."""
    images = photos()
    warm_up = min(len(images), count // 2)
    marks, trend = {}, []
    start = time.perf_counter()
    for index in range(count):
        predict(images[index % len(images)], PROMPTS[index % len(PROMPTS)])
        if (index + 1) % 20 == 0:
            gc.collect()
            trend.append(round(measure()[1]))
        if index + 1 == warm_up:
            marks["warm"] = measure()
    gc.collect()
    marks["end"] = measure()
    return {**marks, "seconds": time.perf_counter() - start, "warm_up": warm_up, "trend": trend}


def in_process(folder: Path, count: int, dtype: str) -> dict:
    from lang_sam import LangSAM

    checkpoints, detector = folder, folder / "detector"
    model = LangSAM("vit_b", checkpoints / "sam_vit_b_01ec64.pth", detector, device="cpu", dtype=dtype)
    return soak(lambda image, prompt: model.predict(image, prompt, max_detections=MAX_DETECTIONS), count,
                lambda: memory_of([os.getpid()]))


def through_server(folder: Path, count: int, dtype: str) -> dict:
    import httpx

    from tests.services import free_port, start_service, stop_session

    port = free_port()
    environment = {**os.environ, "LANG_SAM_CHECKPOINTS": str(folder), "LANG_SAM_DETECTOR": str(folder / "detector"),
                   "LANG_SAM_SAM_TYPE": "vit_b", "LANG_SAM_DEVICE": "cpu", "LANG_SAM_DTYPE": dtype}
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "serve", "--port", str(port)]
    process = start_service(command, environment, f"http://127.0.0.1:{port}/health", folder / "server.log")
    try:
        def predict(image: Path, prompt: str) -> None:
            response = httpx.post(f"http://127.0.0.1:{port}/predict", files={"image": image.read_bytes()},
                                  data={"prompt": prompt, "max_detections": MAX_DETECTIONS}, timeout=300)
            response.raise_for_status()

        return soak(predict, count, lambda: memory_of(session_pids(process.pid)))
    finally:
        stop_session(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=int, default=200)
    parser.add_argument("--mode", choices=["process", "server", "both"], default="both")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], help="default: bfloat16 where it is native, else float32")
    args = parser.parse_args()
    args.dtype = args.dtype or ("bfloat16" if cpu_bf16_instructions() else "float32")
    print(f"machine: {describe_cpu()}, torch {torch.__version__}; vit_b {args.dtype} + "
          f"tiny Grounding DINO (random); {args.predictions} predictions, warm-up one pass over the photos; "
          f"{len(photos())} photos from {SHARED if SHARED.is_dir() else ROOT / 'assets'}")
    with tempfile.TemporaryDirectory() as folder:
        write_models(Path(folder))
        modes = ["process", "server"] if args.mode == "both" else [args.mode]
        for mode in modes:
            run = in_process if mode == "process" else through_server
            marks = run(Path(folder), args.predictions, args.dtype)
            (warm_rss, warm_peak), (end_rss, end_peak) = marks["warm"], marks["end"]
            growth = end_peak / warm_peak - 1
            print(f"{mode:8} peak RSS after warm-up {warm_peak:6.0f} MiB, at the end {end_peak:6.0f} MiB: growth "
                  f"{growth * 100:+.1f}% ({'within' if growth <= 0.05 else 'ABOVE'} the 5% target); current RSS "
                  f"{warm_rss:.0f} -> {end_rss:.0f} MiB; {marks['seconds'] / args.predictions:.2f} s per prediction")
            print(f"{'':8} warm-up {marks['warm_up']} predictions; peak RSS every 20 predictions (MiB): {marks['trend']}")


if __name__ == "__main__":
    main()
