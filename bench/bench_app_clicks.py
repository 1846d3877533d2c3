"""Click-to-mask latency in the web page: the app (``python app.py``) on vit_b random weights, real
Chromium clicking on a 1024x768 photo in the Clicks tab, timed from the click to the page showing
the answer (the status line and the drawing come in one update). One run.

    python bench/bench_app_clicks.py [--clicks 10] [--dtype float32]

Prints the first click (it encodes the image) and the median and largest of later clicks (1 to 5
points, object and background), beside the time the app's handler itself took (its status line).
Needs Chromium (scripts/install-chromium) and the test extra (playwright).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # the tests' tiny detector and random SAM weights

from bench_sam import test_image  # noqa: E402 - this folder is on the path when run as a script
from lang_sam.devices import describe_cpu  # noqa: E402
from lang_sam.registry import SAM_MODELS  # noqa: E402
from tests.conftest import bert_vocab_path, random_sam_state_dict, tiny_grounding_dino  # noqa: E402
from tests.services import free_port, start_service, stop_session  # noqa: E402
from tests.interfaces.test_app import BROWSER_ARGS, CHROMIUM  # noqa: E402


def save_models(folder: Path) -> tuple[Path, Path]:
    """Random vit_b weights under Meta's file name, and a tiny detector (clicks never run it)."""
    from transformers import BertTokenizer, GroundingDinoImageProcessor, GroundingDinoProcessor

    checkpoints = folder / "checkpoints"
    checkpoints.mkdir()
    torch.save(random_sam_state_dict(SAM_MODELS["vit_b"].architecture), checkpoints / SAM_MODELS["vit_b"].file_name)
    detector = folder / "detector"
    tiny_grounding_dino().save_pretrained(detector)
    GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(),
                           tokenizer=BertTokenizer(vocab=str(bert_vocab_path()))).save_pretrained(detector)
    return checkpoints, detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"machine: {describe_cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        checkpoints, detector = save_models(folder)
        photo = folder / "photo.png"
        Image.fromarray(test_image()).save(photo)
        port = free_port()
        environment = {**os.environ, "LANG_SAM_CHECKPOINTS": str(checkpoints), "LANG_SAM_DETECTOR": str(detector),
                       "LANG_SAM_SAM_TYPE": "vit_b", "LANG_SAM_DEVICE": "cpu", "LANG_SAM_DTYPE": args.dtype,
                       "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
        process = start_service([sys.executable, str(REPOSITORY / "app.py"), "--port", str(port)], environment,
                                f"http://127.0.0.1:{port}/", folder / "app.log")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(600_000)
                page.goto(f"http://127.0.0.1:{port}/")
                page.get_by_role("tab", name="Clicks").click()
                page.locator("#click-upload input[type=file]").set_input_files(str(photo))
                page.locator("#click-status").get_by_text("Click on the object").wait_for()
                canvas = page.locator("#click-canvas img").first
                box = canvas.bounding_box()
                rng = np.random.default_rng(0)
                page_times, handler_times = [], []
                for click in range(args.clicks + 1):
                    if click and click % 5 == 0:
                        page.locator("#click-clear").click()
                        page.locator("#click-status").get_by_text("Click on the object").wait_for()
                    count = click % 5 + 1
                    page.get_by_label("object point" if count == 1 or rng.random() < 0.5 else "background point").check()
                    x, y = rng.uniform(0.1, 0.9, 2)
                    started = time.perf_counter()
                    canvas.click(position={"x": x * box["width"], "y": y * box["height"]})
                    page.locator("#click-status").get_by_text(f"{count} click{'s' if count > 1 else ''}:").wait_for()
                    page_times.append(time.perf_counter() - started)
                    status = page.locator("#click-status").inner_text()
                    handler_times.append(float(re.search(r"mask in (\d+) ms", status).group(1)) / 1000)
                browser.close()
        finally:
            stop_session(process)
    print(f"== app Clicks tab, vit_b, {args.dtype}, 1024x768 photo, Chromium")
    print(f"first click (encodes the image): page {page_times[0]:.2f} s, handler {handler_times[0]:.2f} s")
    later, handlers = page_times[1:], handler_times[1:]
    print(f"later clicks: page median {statistics.median(later) * 1000:.0f} ms (max {max(later) * 1000:.0f} ms), "
          f"handler median {statistics.median(handlers) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
