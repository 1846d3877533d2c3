"""Segment-everything on every promptable family: SAM 2.1 and SAM-HQ (tiny random models saved with
save_pretrained) through the generator, the library, `lang-sam everything`, `label --everything`, the
pool that the app and the server share and a `lang-sam serve` process; SAM v1 through the contract. The generator's records are checked against transformers'
model and processor called directly on the same point grid, followed by segment-anything's filters
written out here (IoU, stability, crop edges, box and crop NMS, small regions; only the grid, the
crop boxes and the stability score, proven against Meta's in tests/segmenter/test_automatic_mask_generator.py,
are reused)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torchvision.ops import nms

from lang_sam.errors import InvalidOptionError
from lang_sam.families.loading import load_segmenter
from lang_sam.segmenter import SamAutomaticMaskGenerator
from lang_sam.segmenter.automatic_mask_generator import crop_boxes, point_grid, stability_scores
from tests.conftest import synthetic_image
from tests.segmenter.test_automatic_mask_generator import FIELDS

IMAGE = synthetic_image(120, 160, seed=4)


def direct_candidates(direct, image: np.ndarray, points_per_side: int):
    """Every point of the grid as one single-point prompt, through the model and processor called
    directly: (3P, H, W) float logits at image size, (3P,) predicted IoU, (3P, 2) the prompting points."""
    model, processor = direct
    height, width = image.shape[:2]
    points = point_grid(points_per_side) * [width, height]
    inputs = processor(images=image, input_points=[[[list(point)] for point in points]],
                       input_labels=[[[1] for _ in points]], return_tensors="pt")
    arguments = {key: value.float() if value.is_floating_point() else value for key, value in inputs.items()
                 if key not in ("original_sizes", "reshaped_input_sizes")}
    with torch.no_grad():
        outputs = model(**arguments, multimask_output=True)
    sizes = [inputs["original_sizes"]] + ([inputs["reshaped_input_sizes"]] if "reshaped_input_sizes" in inputs else [])
    logits = processor.post_process_masks(outputs.pred_masks, *sizes, binarize=False)[0]
    return logits.flatten(0, 1), outputs.iou_scores[0].flatten(), np.repeat(points, 3, axis=0)


def inclusive_box(mask: np.ndarray) -> list[int]:
    """segment-anything's box of a mask: first and last row and column holding it; [0, 0, 0, 0] if empty."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [int(columns[0]), int(rows[0]), int(columns[-1]), int(rows[-1])] if len(rows) else [0, 0, 0, 0]


def cut_by_crop(box: list[int], crop: list[int], image_size: tuple[int, int]) -> bool:
    """Whether a box (image frame) lies within 20 pixels of an edge of the crop that is not the image's."""
    image_edges = [0, 0, image_size[1], image_size[0]]
    return any(abs(b - c) <= 20 and abs(b - e) > 20 for b, c, e in zip(box, crop, image_edges))


def expected_crop_records(direct, image: np.ndarray, crop: list[int], points_per_side: int, pred_iou_thresh: float,
                          stability_score_thresh: float, stability_score_offset: float, box_nms_thresh: float) -> list[dict]:
    """segment-anything's records of one xyxy crop: the grid on the crop, the IoU filter, the
    stability filter, masks at logit 0, masks cut by the crop dropped, box NMS by predicted IoU;
    masks, boxes and points then placed in the whole image."""
    x0, y0, x1, y1 = crop
    logits, iou, points = direct_candidates(direct, np.ascontiguousarray(image[y0:y1, x0:x1]), points_per_side)
    stability = stability_scores(logits, 0.0, stability_score_offset)
    keep = ((iou > pred_iou_thresh) | (pred_iou_thresh == 0)) & ((stability >= stability_score_thresh) | (stability_score_thresh == 0))
    masks = np.zeros((int(keep.sum()), *image.shape[:2]), dtype=bool)
    masks[:, y0:y1, x0:x1] = (logits > 0)[keep].numpy()
    boxes = [inclusive_box(mask) for mask in masks]  # in the image: the same as the crop's box, moved
    whole = [not cut_by_crop(box, crop, image.shape[:2]) for box in boxes]
    masks, iou, stability, points = masks[whole], iou[keep][whole], stability[keep][whole], points[keep.numpy()][whole]
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)[whole]
    records = []
    for index in nms(boxes, iou, box_nms_thresh).tolist():
        bx0, by0, bx1, by1 = boxes[index].int().tolist()
        records.append({"segmentation": masks[index], "area": int(masks[index].sum()), "bbox": [bx0, by0, bx1 - bx0, by1 - by0],
                        "predicted_iou": float(iou[index]), "point_coords": [(points[index] + [x0, y0]).tolist()],
                        "stability_score": float(stability[index]), "crop_box": [x0, y0, x1 - x0, y1 - y0]})
    return records


def expected_records(direct, image: np.ndarray, points_per_side: int, crop_n_layers: int = 0, crop_nms_thresh: float = 0.7,
                     min_mask_region_area: int = 0, **filters) -> list[dict]:
    """segment-anything's records: each crop's (the image, then crop_boxes' overlapping crops of
    each layer, each prompted with the same grid: crop_n_points_downscale_factor 1), then, with
    several crops, NMS preferring the mask from the smallest crop; then small regions cleaned."""
    crops = crop_boxes(*image.shape[:2], crop_n_layers, 512 / 1500)
    records = [record for crop, _ in crops for record in expected_crop_records(direct, image, crop, points_per_side, **filters)]
    if len(crops) > 1:
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in records)], dtype=torch.float32)
        smallness = torch.tensor([1.0 / (r["crop_box"][2] * r["crop_box"][3]) for r in records])
        records = [records[index] for index in nms(boxes, smallness, crop_nms_thresh).tolist()]
    if min_mask_region_area > 0:
        records = cleaned_records(records, min_mask_region_area, max(filters["box_nms_thresh"], crop_nms_thresh))
    return records


def without_small_regions(mask: np.ndarray, min_area: int, holes: bool) -> tuple[np.ndarray, bool]:
    """segment-anything's remove_small_regions with scipy: holes (8-connected background regions)
    under min_area filled, or islands under min_area removed (the largest kept if all are)."""
    from scipy import ndimage

    regions, count = ndimage.label(~mask if holes else mask, structure=np.ones((3, 3)))
    sizes = np.bincount(regions.ravel(), minlength=count + 1)[1:]
    small = [label + 1 for label, size in enumerate(sizes) if size < min_area]
    if not small:
        return mask, False
    if holes:
        return np.isin(regions, [0, *small]), True
    kept = [label for label in range(1, count + 1) if label not in small] or [int(np.argmax(sizes)) + 1]
    return np.isin(regions, kept), True


def cleaned_records(records: list[dict], min_area: int, nms_thresh: float) -> list[dict]:
    """Holes then islands under min_area removed from every mask; NMS preferring unchanged masks;
    the changed masks that stay get their new area and box."""
    cleaned, unchanged = [], []
    for record in records:
        filled, holes_changed = without_small_regions(record["segmentation"], min_area, holes=True)
        mask, islands_changed = without_small_regions(filled, min_area, holes=False)
        cleaned.append(mask)
        unchanged.append(not (holes_changed or islands_changed))
    boxes = torch.tensor([inclusive_box(mask) for mask in cleaned], dtype=torch.float32)
    kept = []
    for index in nms(boxes, torch.tensor(unchanged, dtype=torch.float32), nms_thresh).tolist():
        x0, y0, x1, y1 = inclusive_box(cleaned[index])
        kept.append({**records[index], "segmentation": cleaned[index], "area": int(cleaned[index].sum()),
                     "bbox": [x0, y0, x1 - x0, y1 - y0]})
    return kept


def assert_equal_records(found: list[dict], expected: list[dict]) -> None:
    """The same masks in the same order (best IoU first), the same fields, scores to float32 precision."""
    assert len(found) == len(expected) > 0
    for mine, theirs in zip(found, expected):
        assert list(mine) == FIELDS and np.array_equal(mine["segmentation"], theirs["segmentation"])
        assert {k: mine[k] for k in ("area", "bbox", "crop_box")} == {k: theirs[k] for k in ("area", "bbox", "crop_box")}
        assert np.allclose(mine["point_coords"], theirs["point_coords"], atol=1e-4)
        assert mine["predicted_iou"] == pytest.approx(theirs["predicted_iou"], abs=1e-5)
        assert mine["stability_score"] == pytest.approx(theirs["stability_score"], abs=1e-5)


def assert_upscaled_logits_give_decodes_masks(segmenter) -> None:
    """decode(upscale=False) gives decode's IoU and low-res logits and no masks; upscale_logits of
    those logits, above 0, are decode's masks."""
    embedding = segmenter.embed(segmenter.preprocess(IMAGE))
    points, labels = torch.tensor([[[40.0, 30.0]], [[120.0, 90.0]]]), torch.ones(2, 1, dtype=torch.int)
    full = segmenter.decode(embedding, points, labels, multimask_output=True)
    low = segmenter.decode(embedding, points, labels, multimask_output=True, upscale=False)
    assert low.masks is None and torch.equal(low.iou, full.iou) and torch.equal(low.low_res_logits, full.low_res_logits)
    logits = segmenter.upscale_logits(embedding, low.low_res_logits)
    assert logits.dtype == torch.float32 and logits.shape == full.masks.shape == (2, 3, *IMAGE.shape[:2])
    assert torch.equal(logits.cpu() > 0, full.masks)


def test_upscaled_logits_are_the_masks_decode_gives(segmenter):
    assert_upscaled_logits_give_decodes_masks(segmenter)


def test_upscaled_logits_are_the_masks_decode_gives_on_sam_v1():
    from lang_sam.segmenter.adapter import SamV1Segmenter
    from lang_sam.segmenter.build import build_sam_from_architecture
    from tests.conftest import TINY_A, TINY_SAMS, random_sam_state_dict

    sam = build_sam_from_architecture(TINY_SAMS[TINY_A])
    sam.load_state_dict(random_sam_state_dict(TINY_SAMS[TINY_A], seed=2))
    assert_upscaled_logits_give_decodes_masks(SamV1Segmenter(sam, TINY_A))


def test_every_mask_of_the_grid_equals_the_model_called_directly(segmenter, direct):
    options = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, stability_score_offset=1.0,
                   box_nms_thresh=1.0)
    found = SamAutomaticMaskGenerator(segmenter, points_per_batch=5, **options).generate(IMAGE)  # batches of 5 points
    expected = expected_records(direct, IMAGE, **options)
    assert len(expected) == 48, "three masks for each of 16 points, none filtered"
    assert_equal_records(found, expected)


def test_the_filters_keep_what_they_keep_on_the_model_called_directly(segmenter, direct):
    logits, iou, _ = direct_candidates(direct, IMAGE, 4)
    offset = float(logits.abs().median())  # random weights give logits near 0: an offset on their scale
    stability = stability_scores(logits, 0.0, offset)
    options = dict(points_per_side=4, pred_iou_thresh=float(iou.median()), stability_score_thresh=float(stability.quantile(0.25)),
                   stability_score_offset=offset, box_nms_thresh=0.7)
    expected = expected_records(direct, IMAGE, **options)
    assert 0 < len(expected) < 0.75 * 48, "the filters drop some masks and keep some"
    assert_equal_records(SamAutomaticMaskGenerator(segmenter, **options).generate(IMAGE), expected)


def test_crops_equal_the_model_called_directly_on_each_crop(segmenter, direct):
    options = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, stability_score_offset=1.0,
                   box_nms_thresh=1.0, crop_n_layers=1, crop_nms_thresh=1.0)
    image = synthetic_image(150, 200, seed=6)
    # random weights give speckled masks spanning their crop: the crops' masks are cut by the crop
    # and dropped, so this checks the crops' grids, the edge filter and the NMS steps
    expected = expected_records(direct, image, **options)
    assert_equal_records(SamAutomaticMaskGenerator(segmenter, **options).generate(image), expected)


def test_small_regions_equal_the_model_called_directly_then_cleaned(segmenter, direct):
    options = dict(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0, stability_score_offset=1.0,
                   box_nms_thresh=1.0, min_mask_region_area=40)
    expected = expected_records(direct, IMAGE, **options)
    untouched = expected_records(direct, IMAGE, **{**options, "min_mask_region_area": 0})
    assert len(expected) == len(untouched) and sum(r["area"] for r in expected) != sum(r["area"] for r in untouched), \
        "the speckled random masks have small holes and islands to clean"
    assert_equal_records(SamAutomaticMaskGenerator(segmenter, **options).generate(IMAGE), expected)


def test_models_that_take_no_points_are_refused_naming_those_that_can(tiny_detector_dir):
    from lang_sam.families.detectors import load_detector

    detector = load_detector(str(tiny_detector_dir), device="cpu", dtype="float32")
    with pytest.raises(InvalidOptionError, match="cannot segment everything.*SAM v1, SAM 2.1, SAM-HQ, EdgeTAM and SAM 3 with its tracker"):
        SamAutomaticMaskGenerator(detector)


def test_lang_sam_everything_runs_a_folder_and_a_name_of_the_family(family_dir, segmenter, tmp_path, capsys):
    from PIL import Image

    from lang_sam.interfaces.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(IMAGE).save(photos / "scene.png")
    options = ["--points-per-side", "3", "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--device", "cpu",
               "--dtype", "float32"]
    by_folder = ["everything", str(photos), "--out", str(tmp_path / "folder"), "--sam-checkpoint", str(family_dir), *options]
    by_name = ["everything", str(photos), "--out", str(tmp_path / "name"), "--sam-type", family_dir.name,
               "--checkpoint-dir", str(family_dir.parent), *options]
    assert main(by_folder) == 0 and main(by_name) == 0
    assert f"SAM {family_dir.name} on cpu, float32" in capsys.readouterr().err
    expected = sorted(SamAutomaticMaskGenerator(segmenter, points_per_side=3, pred_iou_thresh=0.0,
                                                stability_score_thresh=0.0).generate(IMAGE), key=lambda r: -r["area"])
    for out in ("folder", "name"):
        payload = json.loads((tmp_path / out / "scene.json").read_text())
        assert len(payload["masks"]) == len(expected) > 0
        for written, record in zip(payload["masks"], expected):
            rle = {"size": written["segmentation"]["size"], "counts": written["segmentation"]["counts"].encode()}
            assert np.array_equal(mask_utils.decode(rle).astype(bool), record["segmentation"])
            assert {k: written[k] for k in FIELDS[1:]} == {k: record[k] for k in FIELDS[1:]}


def test_label_everything_boxes_are_the_masks_pixel_edge_boxes(family_dir, tmp_path):
    from PIL import Image

    from lang_sam.interfaces.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(IMAGE).save(photos / "scene.png")
    out = tmp_path / "labelled"
    assert main(["label", str(photos), "--everything", "--out", str(out), "--sam-checkpoint", str(family_dir),
                 "--device", "cpu", "--dtype", "float32", "--points-per-side", "2", "--pred-iou-thresh", "0",
                 "--stability-score-thresh", "0"]) == 0
    annotations = json.loads((out / "annotations.json").read_text())["annotations"]
    assert annotations
    for annotation in annotations:
        rle = {**annotation["segmentation"], "counts": annotation["segmentation"]["counts"].encode()}
        # pycocotools' own box of the mask: x, y of its first pixel, width and height in whole pixels
        assert annotation["bbox"] == pytest.approx(mask_utils.toBbox(rle).tolist())


def test_the_pool_of_the_app_and_server_segments_everything_with_the_family(family_dir, segmenter, tiny_detector_dir):
    from lang_sam.interfaces.models import ModelPool
    from lang_sam.settings import Settings

    pool = ModelPool(Settings(sam_type=family_dir.name, checkpoint_dir=str(family_dir.parent), detector=str(tiny_detector_dir),
                              device="cpu", dtype="float32"))
    options = dict(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    found = pool.everything(IMAGE, family_dir.name, **options)
    expected = SamAutomaticMaskGenerator(segmenter, **options).generate(IMAGE)
    assert len(found) == len(expected) > 0
    assert all(np.array_equal(a, b["segmentation"]) for a, b in zip(found.dense_masks(), expected))


@pytest.fixture(scope="module")
def family_server(service_environment, tmp_path_factory):
    """`lang-sam serve` offering a tiny SAM 2.1 and a tiny SAM-HQ (the weights of family_dir) by
    their folder names in its checkpoint folder; yields its URL and that folder."""
    import sys

    from tests.families.conftest import save_tiny_segmenter
    from tests.services import free_port, start_service, stop_session

    checkpoints = tmp_path_factory.mktemp("served-families")
    for family in ("sam2", "sam_hq"):
        save_tiny_segmenter(family, checkpoints / f"tiny-{family}")
    port = free_port()
    command = [sys.executable, "-m", "lang_sam.interfaces.cli", "serve", "--port", str(port), "--sam-types", "tiny-sam2,tiny-sam_hq"]
    environment = {**service_environment, "LANG_SAM_CHECKPOINTS": str(checkpoints), "LANG_SAM_SAM_TYPE": "tiny-sam2"}
    process = start_service(command, environment, f"http://127.0.0.1:{port}/health", tmp_path_factory.mktemp("log") / "server.log")
    yield f"http://127.0.0.1:{port}", checkpoints
    stop_session(process)


@pytest.mark.parametrize("family", ["sam2", "sam_hq"])
def test_the_servers_mode_everything_answers_the_familys_masks(family_server, family):
    import io

    import httpx
    from PIL import Image

    url, checkpoints = family_server
    png = io.BytesIO()
    Image.fromarray(IMAGE).save(png, format="PNG")
    fields = {"mode": "everything", "sam_type": f"tiny-{family}", "points_per_side": "2", "pred_iou_thresh": "0",
              "stability_score_thresh": "0"}
    response = httpx.post(f"{url}/predict", files={"image": ("scene.png", png.getvalue(), "image/png")}, data=fields, timeout=300)
    assert response.status_code == 200, response.text
    payload = response.json()
    segmenter = load_segmenter(checkpoint=checkpoints / f"tiny-{family}", device="cpu", dtype="float32")
    expected = sorted(SamAutomaticMaskGenerator(segmenter, points_per_side=2, pred_iou_thresh=0.0,
                                                stability_score_thresh=0.0).generate(IMAGE), key=lambda r: -r["area"])
    assert f"SAM tiny-{family}" in payload["model"] and len(payload["masks"]) == len(expected) > 0
    for written, record in zip(payload["masks"], expected):
        rle = {"size": written["segmentation"]["size"], "counts": written["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), record["segmentation"])
        assert written["predicted_iou"] == record["predicted_iou"]
