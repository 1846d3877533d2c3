"""The Gradio app as a real process: driven by headless Chromium (Playwright) and by gradio_client."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lang_sam.results import LangSAMResult
from tests.conftest import TINY_A, TINY_B
from tests.families.test_sam3 import save_tiny_sam3
from tests.services import free_port, start_service, stop_session
from tests.detector.test_grounding_dino import ASSETS

REPOSITORY = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TINY_SAM3 = "tiny-sam3"  # a tiny random SAM 3 folder beside the service's SAMs: the app offers it by its name


@pytest.fixture(scope="module")
def app_checkpoints(service_models, tmp_path_factory) -> Path:
    """The app's checkpoint folder: the service's two tiny SAMs and a tiny random SAM 3 (float32 parity
    with LangSAM needs the same weights, so the test reads them from here too)."""
    folder = tmp_path_factory.mktemp("app-checkpoints")
    for name in (TINY_A, TINY_B):
        (folder / f"{name}.pth").symlink_to(service_models[0] / f"{name}.pth")
    save_tiny_sam3(folder / TINY_SAM3)
    return folder


@pytest.fixture(scope="module")
def app_url(service_environment, app_checkpoints, tmp_path_factory):
    port = free_port()
    environment = {**service_environment, "LANG_SAM_CHECKPOINTS": str(app_checkpoints)}
    log = tmp_path_factory.mktemp("app") / "app.log"
    process = start_service(
        [sys.executable, str(REPOSITORY / "app.py"), "--port", str(port)], environment, f"http://127.0.0.1:{port}/", log
    )
    yield f"http://127.0.0.1:{port}/"
    stop_session(process)


@pytest.fixture(scope="module")
def page(app_url, tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.fail("Chromium is missing: apt-get install -y chromium (the README's test command does this).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(300_000)  # a ceiling for slow machines under load, not a target
        page.goto(app_url)
        yield page
        browser.close()


def submit(page, prompt: str) -> None:
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#submit").click()


def choose_sam(page, sam_type: str) -> None:
    page.locator("#sam-type input").click()
    page.get_by_role("option", name=sam_type, exact=True).click()


def test_upload_prompt_submit_shows_drawing_table_and_model(page, tmp_path):
    page.locator("#input-image input[type=file]").set_input_files(str(ASSETS / "chelsea.jpg"))
    submit(page, "cat, sofa")
    status = page.locator("#status")
    status.get_by_text(f"SAM {TINY_A} (encoder width 192)").wait_for()
    # the status can render before the image and the table: wait for them (the timeout fails the test)
    page.locator("#drawing img").first.wait_for(state="visible")
    grid = page.locator("#detections [role=grid]")
    grid.locator('[role=gridcell][aria-colindex="1"]').first.wait_for()
    assert int(grid.get_attribute("aria-rowcount")) > 1, "a header and at least one detection"
    labels = {cell.inner_text().strip() for cell in grid.locator('[role=gridcell][aria-colindex="1"]').all()}
    assert labels and labels <= {"cat", "sofa"}
    page.screenshot(path=str(tmp_path / "app.png"))


def test_switching_the_sam_changes_the_model_in_use(page):
    # A tiny model loads in a blink: record every text the page shows, so that the progress message
    # is seen however briefly it stays.
    page.evaluate("""() => {
        window.seenTexts = [];
        new MutationObserver(() => window.seenTexts.push(document.body.innerText))
            .observe(document.body, {childList: true, subtree: true, characterData: true});
    }""")
    choose_sam(page, TINY_B)
    submit(page, "cat")
    page.locator("#status").get_by_text(f"SAM {TINY_B} (encoder width 256)").wait_for()
    seen = page.evaluate("window.seenTexts")
    assert any(f"Loading SAM {TINY_B}" in text for text in seen), "a first load shows its progress"
    choose_sam(page, TINY_A)
    submit(page, "sofa")
    page.locator("#status").get_by_text(f"SAM {TINY_A} (encoder width 192)").wait_for()


def test_bad_input_shows_a_message_and_the_app_keeps_serving(page):
    submit(page, "   ")
    page.get_by_text("Type what to find").first.wait_for()
    choose_sam(page, "vit_h")  # not in the checkpoint folder, and no network
    submit(page, "cat")
    page.get_by_text("sam_vit_h_4b8939.pth").first.wait_for()
    choose_sam(page, TINY_A)
    submit(page, "cat")
    page.locator("#status").get_by_text(f"SAM {TINY_A} (encoder width 192)").wait_for()


def served_file(app_url: str, source: str) -> bytes:
    """A file the page links to (an image's src, a download's href), fetched from the app."""
    from urllib.parse import urljoin

    import httpx

    return httpx.get(urljoin(app_url, source), timeout=60).content


def canvas_pixels(page, app_url: str, canvas: str = "#click-canvas") -> np.ndarray:
    import io

    source = page.locator(f"{canvas} img").first.get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(served_file(app_url, source))).convert("RGB"))


CANVAS_READY = """(canvas) => {
    const image = document.querySelector(canvas + ' img');
    if (!image || !image.complete || image.naturalWidth === 0) return false;
    const shown = image.getBoundingClientRect();
    return shown.width > 0 && shown.height > 0;
}"""


def loaded_canvas(page, canvas: str) -> dict:
    """The click canvas's box on the page, once its image has loaded and been laid out: Gradio turns
    a click into image pixels with the image's natural and shown sizes, so a click on an image still
    loading (after an upload or a new drawing) lands at x = 0 on a busy machine."""
    page.wait_for_function(CANVAS_READY, arg=canvas)
    return page.locator(f"{canvas} img").first.bounding_box()


def click_canvas(page, fx: float, fy: float, canvas: str = "#click-canvas", **options) -> None:
    """Click at (fx, fy) of the canvas image's width and height, once it is ready for clicks."""
    box = loaded_canvas(page, canvas)
    page.locator(f"{canvas} img").first.click(position={"x": fx * box["width"], "y": fy * box["height"]}, **options)


def test_clicks_segment_as_the_library_does_and_a_background_click_changes_the_mask(page, app_url, service_models):
    from lang_sam import LangSAM
    from lang_sam.drawing import draw_image

    model = LangSAM(sam_checkpoint=service_models[0] / f"{TINY_A}.pth", detector=service_models[1], device="cpu", dtype="float32")
    photo = np.asarray(Image.open(ASSETS / "chelsea.jpg").convert("RGB"))
    page.get_by_role("tab", name="Clicks").click()
    choose_sam(page, TINY_A)
    page.locator("#click-upload input[type=file]").set_input_files(str(ASSETS / "chelsea.jpg"))
    page.locator("#click-status").get_by_text("Click on the object").wait_for()
    drawings = []
    for count, (fx, fy, mode) in enumerate(((0.45, 0.5, "object point"), (0.8, 0.3, "background point")), start=1):
        page.get_by_label(mode).check()
        click_canvas(page, fx, fy)
        page.locator("#click-status").get_by_text(f"{count} click").wait_for()
        page.wait_for_function(f"() => JSON.parse(document.querySelector('#click-points textarea').value || '[]').length == {count}")
        clicks = json.loads(page.locator("#click-points textarea").input_value())
        assert clicks[-1][2] == (1 if mode == "object point" else 0)
        assert abs(clicks[-1][0] - fx * photo.shape[1]) <= 3 and abs(clicks[-1][1] - fy * photo.shape[0]) <= 3
        expected = model.predict(photo, points=[c[:2] for c in clicks], point_labels=[c[2] for c in clicks])
        drawing = canvas_pixels(page, app_url)
        assert np.array_equal(drawing, draw_image(photo, expected)), f"after {count} clicks, the library's drawing"
        drawings.append(drawing)
        status = page.locator("#click-status").inner_text()
        print(f"click-to-mask: {status}")
    assert not np.array_equal(drawings[0], drawings[1]), "the background click changed the mask"
    page.locator("#click-undo").click()
    page.wait_for_function("() => JSON.parse(document.querySelector('#click-points textarea').value || '[]').length == 1")

    def clicks_after(count: int) -> list:
        page.wait_for_function(f"() => JSON.parse(document.querySelector('#click-points textarea').value || '[]').length == {count}")
        page.locator("#click-status").get_by_text(f"{count} click").wait_for() if count else None
        return json.loads(page.locator("#click-points textarea").input_value())

    page.get_by_label("object point").check()
    click_canvas(page, 0.8, 0.3, modifiers=["Shift"])
    assert clicks_after(2)[-1][2] == 0, "Shift+click adds a background point in object mode"
    page.locator("#click-clear").click()
    clicks_after(0)
    page.get_by_label("box corner (two clicks)").check()
    click_canvas(page, 0.6, 0.7)
    page.locator("#click-status").get_by_text("Click the opposite corner").wait_for()
    click_canvas(page, 0.1, 0.15)
    corners = clicks_after(2)
    (x1, y1, _), (x0, y0, _) = corners
    assert np.array_equal(canvas_pixels(page, app_url), draw_image(photo, model.predict(photo, boxes=[[x0, y0, x1, y1]]))), \
        "two corners make the box the library segments"
    page.locator("#click-clear").click()
    clicks_after(0)
    page.get_by_label("object point").check()
    click_canvas(page, 0.45, 0.5)
    click = clicks_after(1)
    page.locator("#click-candidate").wait_for()
    expected = model.predict(photo, points=[click[0][:2]])
    for index in (2, 0):
        page.locator("#click-candidate").get_by_text(f"{index + 1}: mask score").click()
        wanted = draw_image(photo, replace(expected, masks=expected.candidates[:, index],
                                           mask_scores=expected.candidate_scores[:, index]))
        for _ in range(600):  # the drawing updates when the answer lands
            if np.array_equal(canvas_pixels(page, app_url), wanted):
                break
            page.wait_for_timeout(100)
        assert np.array_equal(canvas_pixels(page, app_url), wanted), f"candidate {index + 1} is drawn"
    page.get_by_role("tab", name="Text prompt").click()


def boxes_drawn(page, examples: int, counters: int) -> dict:
    """The more-like-this tab's boxes, once it shows that many examples and counter-examples."""
    page.wait_for_function(f"""() => {{
        const boxes = JSON.parse(document.querySelector('#exemplar-boxes textarea').value || '{{}}');
        return (boxes.exemplars || []).length == {examples} && (boxes.negative_exemplars || []).length == {counters};
    }}""")
    return json.loads(page.locator("#exemplar-boxes textarea").input_value())


def test_exemplar_boxes_drawn_in_the_app_find_what_the_library_finds(page, app_url, app_checkpoints):
    from lang_sam import LangSAM
    from lang_sam.interfaces.app.components import detection_rows

    model = LangSAM(TINY_SAM3, checkpoint_dir=app_checkpoints, device="cpu", dtype="float32")
    photo = np.asarray(Image.open(ASSETS / "coffee.jpg").convert("RGB"))
    page.get_by_role("tab", name="More like this").click()
    choose_sam(page, TINY_SAM3)
    page.locator("#exemplar-upload input[type=file]").set_input_files(str(ASSETS / "coffee.jpg"))
    page.locator("#exemplar-drawn").get_by_text("Click two opposite corners of an example").wait_for()
    threshold = page.locator("#exemplar-threshold input[type=number]")
    threshold.fill("0")
    threshold.press("Tab")
    click_canvas(page, 0.55, 0.575, canvas="#exemplar-canvas")  # the example's corners, bottom right first
    # each click waits for the last one's answer, as a user sees it, before the next
    page.locator("#exemplar-drawn").get_by_text("Click the opposite corner of the example").wait_for()
    click_canvas(page, 0.22, 0.15, canvas="#exemplar-canvas")
    boxes_drawn(page, 1, 0)
    page.get_by_label("counter-example (not like this)").check()
    click_canvas(page, 0.03, 0.45, canvas="#exemplar-canvas")
    page.locator("#exemplar-drawn").get_by_text("Click the opposite corner of the counter-example").wait_for()
    click_canvas(page, 0.23, 0.72, canvas="#exemplar-canvas")
    boxes = boxes_drawn(page, 1, 1)
    click_canvas(page, 0.9, 0.9, canvas="#exemplar-canvas")
    page.locator("#exemplar-drawn").get_by_text("Click the opposite corner").wait_for()
    page.locator("#exemplar-undo").click()
    page.locator("#exemplar-drawn").get_by_text("1 example, 1 counter-example").wait_for()
    assert np.allclose(boxes["exemplars"], [[132, 60, 330, 230]], atol=3), "two corners, either way round, one box"
    assert np.allclose(boxes["negative_exemplars"], [[18, 180, 138, 288]], atol=3), "the kind of its first corner"
    (x0, y0, _, y1), (_, v0, u1, v1) = boxes["exemplars"][0], boxes["negative_exemplars"][0]
    canvas = canvas_pixels(page, app_url, "#exemplar-canvas")
    assert canvas[(y0 + y1) // 2, x0].tolist() == [0, 200, 0] and canvas[(v0 + v1) // 2, u1].tolist() == [230, 0, 0], \
        "the example box drawn green, the counter-example red"
    page.locator("#exemplar-prompt textarea").fill("cup")
    page.locator("#exemplar-submit").click()
    page.locator("#exemplar-status").get_by_text(f"Model: {TINY_SAM3}").wait_for()
    expected = model.predict(photo, "cup", box_threshold=0.0, **boxes)
    assert expected.num_detections > 1, "every instance the model scores, not only the boxed one"
    link = page.locator("#exemplar-download a").first
    link.wait_for()
    found = LangSAMResult.from_json(json.loads(served_file(app_url, link.get_attribute("href"))))
    assert np.array_equal(found.masks, expected.masks) and found.phrases == expected.phrases == ["cup"] * len(found.phrases)
    np.testing.assert_allclose(found.logits, expected.logits, rtol=0, atol=1e-5)
    np.testing.assert_allclose(found.boxes, expected.boxes, rtol=0, atol=5e-4)  # the JSON keeps 3 decimals of a box
    # the status can render before the table: wait for the table's rows (a header and one per detection)
    page.wait_for_function(f"""() => document.querySelector('#exemplar-detections [role=grid]')
        ?.getAttribute('aria-rowcount') == '{expected.num_detections + 1}'""")
    grid = page.locator("#exemplar-detections [role=grid]")
    shown = [cell.inner_text().strip() for cell in grid.locator('[role=gridcell][aria-colindex="2"]').all()]
    assert [float(score) for score in shown] == pytest.approx([row[1] for row in detection_rows(expected.to_json())], abs=1e-3)
    page.locator("#exemplar-clear").click()
    boxes_drawn(page, 0, 0)
    choose_sam(page, TINY_A)
    page.get_by_role("tab", name="Text prompt").click()


def test_the_exemplars_api_answers_as_the_library_and_explains_a_model_without_exemplars(app_url, app_checkpoints):
    from gradio_client import Client, handle_file

    from lang_sam import LangSAM

    client = Client(app_url, verbose=False)
    image = handle_file(str(ASSETS / "chelsea.jpg"))
    boxes = {"exemplars": [[60, 40, 260, 280]], "negative_exemplars": [[300, 20, 440, 150]]}
    drawing, table, json_file, status = client.predict(image, "", TINY_SAM3, json.dumps(boxes), 0.0, api_name="/exemplars")
    found = LangSAMResult.from_json(json.loads(Path(json_file).read_text()))
    photo = np.asarray(Image.open(ASSETS / "chelsea.jpg").convert("RGB"))
    expected = LangSAM(TINY_SAM3, checkpoint_dir=app_checkpoints, device="cpu", dtype="float32").predict(
        photo, box_threshold=0.0, **boxes)  # no text: the boxes alone show the concept
    assert found.num_detections == expected.num_detections == len(table["data"]) > 1
    assert np.array_equal(found.masks, expected.masks) and found.phrases == expected.phrases
    np.testing.assert_allclose(found.logits, expected.logits, rtol=0, atol=1e-5)
    assert np.asarray(Image.open(drawing)).shape == photo.shape and status.startswith(f"{found.num_detections} detections")
    with pytest.raises(Exception, match="takes no exemplar boxes; SAM 3 does"):
        client.predict(image, "cat", TINY_A, json.dumps(boxes), api_name="/exemplars")
    with pytest.raises(Exception, match="Draw a box around an example first"):
        client.predict(image, "cat", TINY_SAM3, "{}", api_name="/exemplars")
    with pytest.raises(Exception, match="The boxes are JSON"):
        client.predict(image, "cat", TINY_SAM3, "[[1, 2, 3, 4]]", api_name="/exemplars")
    with pytest.raises(Exception, match="exemplar box corner"):  # LangSAM's own check: a box leaving the image
        client.predict(image, "cat", TINY_SAM3, json.dumps({"exemplars": [[60, 40, 900, 280]]}), api_name="/exemplars")


def test_gradio_client_calls_the_api(app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    drawing, table, json_file, status = client.predict(
        handle_file(str(ASSETS / "coffee.jpg")), "cup, spoon", TINY_A, 0.0, 0.0, api_name="/predict"
    )
    assert np.asarray(Image.open(drawing)).shape == (400, 600, 3)
    result = LangSAMResult.from_json(json.loads(Path(json_file).read_text()))
    assert result.masks.shape[1:] == (400, 600) and result.num_detections == len(table["data"]) > 0
    assert [row[0] for row in table["data"]] == result.phrases
    assert set(result.phrases) <= {"cup", "spoon"}
    assert status.startswith(f"{result.num_detections} detection")
    image = handle_file(str(ASSETS / "coffee.jpg"))
    loose = client.predict(image, "cup, spoon", TINY_A, 0.0, 0.0, 1.0, False, api_name="/predict")[1]["data"]
    pruned = client.predict(image, "cup, spoon", TINY_A, 0.0, 0.0, 0.3, False, api_name="/predict")[1]["data"]
    assert loose == table["data"], "the options left out take their defaults: NMS off, one mask"
    assert 0 < len(pruned) < len(loose), "NMS drops overlapping boxes of a class"
    multimask = client.predict(image, "cup, spoon", TINY_A, 0.0, 0.0, 1.0, True, api_name="/predict")[1]["data"]
    assert [row[:2] + row[3:] for row in multimask] == [row[:2] + row[3:] for row in loose], "same boxes"
    assert [row[2] for row in multimask] != [row[2] for row in loose], "the best of three masks, by predicted IoU"
    with pytest.raises(Exception, match="Upload an image first"):
        client.predict(None, "cup", TINY_A, 0.3, 0.25, api_name="/predict")


def test_the_everything_tab_answers_the_generators_masks(app_url, service_models):
    from gradio_client import Client, handle_file

    from lang_sam.everything import records_from_json
    from lang_sam.registry import DEFAULT_UNIVERSAL
    from lang_sam.segmenter import SamAutomaticMaskGenerator, build_sam

    client = Client(app_url, verbose=False)
    drawing, table, json_file, status = client.predict(
        handle_file(str(ASSETS / "coffee.jpg")), TINY_A, 2, 0.0, 0.0, "none", api_name="/everything")
    records = records_from_json(json.loads(Path(json_file).read_text()))
    image = np.asarray(Image.open(ASSETS / "coffee.jpg").convert("RGB"))
    assert np.asarray(Image.open(drawing)).shape == image.shape
    assert len(records) == len(table["data"]) > 0 and status.startswith(f"{len(records)} mask")
    assert [row[2] for row in table["data"]] == sorted((r["area"] for r in records), reverse=True)
    expected = SamAutomaticMaskGenerator(build_sam(checkpoint=service_models[0] / f"{TINY_A}.pth"), points_per_side=2,
                                         pred_iou_thresh=0.0, stability_score_thresh=0.0).generate(image)
    expected.sort(key=lambda record: -record["area"])
    assert all(np.array_equal(r["segmentation"], e["segmentation"]) for r, e in zip(records, expected, strict=True))
    with pytest.raises(Exception, match="Could not load the universal segmentation model"):  # offline: explained
        client.predict(handle_file(str(ASSETS / "coffee.jpg")), TINY_A, 2, 0.0, 0.0, DEFAULT_UNIVERSAL, api_name="/everything")


def test_unreadable_upload_is_explained_and_exif_is_applied(app_url, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((ASSETS / "coffee.jpg").read_bytes()[:600])
    with pytest.raises(Exception, match="Could not read image .*damaged or truncated"):
        client.predict(handle_file(str(broken)), "cup", TINY_A, 0.3, 0.25, api_name="/predict")
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees: the app must see a 600 x 400 (portrait) image
    Image.open(ASSETS / "coffee.jpg").save(rotated, exif=exif)
    drawing, *_ = client.predict(handle_file(str(rotated)), "cup", TINY_A, 0.0, 0.0, api_name="/predict")
    assert np.asarray(Image.open(drawing)).shape == (600, 400, 3)


def test_downloads_keep_only_the_newest_files_and_leave_nothing_at_exit():
    from lang_sam.interfaces.app import DownloadFolder

    downloads = DownloadFolder(keep=2)
    result = LangSAMResult.from_json({"image": {"height": 2, "width": 3}, "detections": []})
    paths = [Path(downloads.write(result.to_json())) for _ in range(3)]
    assert not paths[0].exists() and paths[1].is_file() and paths[2].is_file()
    assert LangSAMResult.from_json(json.loads(paths[2].read_text())).image_size == (2, 3)
    assert len(list(downloads.path.iterdir())) == 2
    folder = downloads.path
    del downloads  # the app's process ending, or the app being dropped
    import gc

    gc.collect()
    assert not folder.exists()
