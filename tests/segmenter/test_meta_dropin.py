"""lang_sam.segmenter as a drop-in for Meta's segment-anything: the steps of Meta's
predictor_example and automatic_mask_generator_example notebooks and of scripts/amg.py, written
once as functions of the package they import from, run against ``segment_anything`` and against
``lang_sam.segmenter`` on the same random weights saved in Meta's format, with the same answers.

Tolerances are tests/segmenter/test_sam_reference.py's (logits and scores within 1e-5, masks 99.9% equal);
automatic-mask-generator records are compared as in tests/segmenter/test_automatic_mask_generator.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path
from types import ModuleType, SimpleNamespace

import cv2
import numpy as np
import pytest
import segment_anything
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from segment_anything.utils.transforms import ResizeLongestSide as MetaResizeLongestSide

import lang_sam.segmenter
from lang_sam.errors import InvalidImageError, InvalidOptionError, InvalidPromptError
from lang_sam.vocabulary import ImageEmbedding
from tests.conftest import SMALL_ARCHITECTURE, random_sam_state_dict, reference_sam, shared_image, synthetic_image
from tests.segmenter.test_automatic_mask_generator import assert_same_records
from tests.segmenter.test_sam_reference import assert_same_outputs

# What each side's notebook imports: Meta's names from segment_anything (ResizeLongestSide from its
# utils.transforms), ours from lang_sam.segmenter alone.
META = SimpleNamespace(
    sam_model_registry=segment_anything.sam_model_registry, SamPredictor=segment_anything.SamPredictor,
    SamAutomaticMaskGenerator=segment_anything.SamAutomaticMaskGenerator, ResizeLongestSide=MetaResizeLongestSide,
)
OURS = lang_sam.segmenter
SIDES = {"segment_anything": META, "lang_sam": OURS}
TINY = "tiny"  # the tiny architecture's key in both registries, for amg.py's --model-type


def as_numpy(outputs) -> list[np.ndarray]:
    return [t.cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t) for t in outputs]


def save_tiny_checkpoint(folder: Path, confident: bool) -> Path:
    """Random tiny SAM weights in Meta's format. Confident ones (predicted IoU shifted up, mask
    logits scaled 1000x) let Meta's default AMG thresholds (0.88 IoU, 0.95 stability) keep masks;
    the predictor tests use plain ones, whose logits stay small enough to compare within 1e-5."""
    state_dict = random_sam_state_dict(SMALL_ARCHITECTURE, seed=7)
    if confident:
        state_dict["mask_decoder.iou_prediction_head.layers.2.bias"] += 0.85
        for index in range(4):
            state_dict[f"mask_decoder.output_hypernetworks_mlps.{index}.layers.2.weight"] *= 1000
    path = folder / f"sam_tiny_{'confident' if confident else 'plain'}.pth"
    torch.save(state_dict, path)
    return path


def both_models(checkpoint: Path) -> dict:
    """Each side's Sam built from the same file (Meta's registry has no tiny size: its _build_sam)."""
    state_dict = torch.load(checkpoint, weights_only=True)
    return {"segment_anything": reference_sam(SMALL_ARCHITECTURE, state_dict), "lang_sam": OURS.build_sam(checkpoint=checkpoint)}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny-sam")
    return {"plain": save_tiny_checkpoint(folder, confident=False), "confident": save_tiny_checkpoint(folder, confident=True)}


@pytest.fixture(scope="module")
def models(checkpoints):
    return both_models(checkpoints["plain"])


@pytest.fixture(scope="module")
def amg_models(checkpoints):
    return both_models(checkpoints["confident"])


@pytest.fixture
def tiny_in_registries(monkeypatch):
    """A builder of the tiny architecture under TINY in both sam_model_registry dicts, so amg.py's
    --model-type finds it."""
    monkeypatch.setitem(META.sam_model_registry, TINY, lambda checkpoint=None: reference_sam(
        SMALL_ARCHITECTURE, torch.load(checkpoint, weights_only=True)))
    monkeypatch.setitem(OURS.sam_model_registry, TINY, lambda checkpoint=None: OURS.build_sam(checkpoint=checkpoint))


# --- notebooks/predictor_example.ipynb, its calls as written there ---------------------------------

def predictor_steps(predictor, image_shape: tuple[int, int]) -> dict[str, list[np.ndarray]]:
    """The notebook's prompts on truck.jpg (1800x1200) after set_image: every predict call's outputs."""
    results = {}
    input_point = np.array([[500, 375]])
    input_label = np.array([1])
    masks, scores, logits = predictor.predict(point_coords=input_point, point_labels=input_label, multimask_output=True)
    results["point"] = [masks, scores, logits]

    input_point = np.array([[500, 375], [1125, 625]])
    input_label = np.array([1, 1])
    mask_input = logits[np.argmax(scores), :, :]
    results["points"] = predictor.predict(
        point_coords=input_point, point_labels=input_label, mask_input=mask_input[None, :, :], multimask_output=False
    )
    input_label = np.array([1, 0])
    results["points_negative"] = predictor.predict(
        point_coords=input_point, point_labels=input_label, mask_input=mask_input[None, :, :], multimask_output=False
    )

    input_box = np.array([425, 600, 700, 875])
    results["box"] = predictor.predict(point_coords=None, point_labels=None, box=input_box[None, :], multimask_output=False)

    input_point = np.array([[575, 750]])
    input_label = np.array([0])
    results["box_and_point"] = predictor.predict(
        point_coords=input_point, point_labels=input_label, box=input_box, multimask_output=False
    )

    input_boxes = torch.tensor(
        [[75, 275, 1725, 850], [425, 600, 700, 875], [1375, 550, 1650, 800], [1240, 675, 1400, 750]],
        device=predictor.device,
    )
    transformed_boxes = predictor.transform.apply_boxes_torch(input_boxes, image_shape)
    masks, scores, logits = predictor.predict_torch(
        point_coords=None, point_labels=None, boxes=transformed_boxes, multimask_output=False
    )
    assert masks.shape == (4, 1, *image_shape)
    results["batched_boxes"] = as_numpy((masks, scores, logits))
    return results


def predictor_notebook(package: ModuleType | SimpleNamespace, sam, image: np.ndarray) -> dict[str, list[np.ndarray]]:
    sam.to(device="cpu")
    predictor = package.SamPredictor(sam)
    predictor.set_image(image)
    return predictor_steps(predictor, image.shape[:2])


def batched_notebook(package: ModuleType | SimpleNamespace, sam, image1: np.ndarray, image2: np.ndarray) -> list[dict]:
    """The notebook's end-to-end batched call: two images, each with its boxes, through sam(...)."""
    image1_boxes = torch.tensor(
        [[75, 275, 1725, 850], [425, 600, 700, 875], [1375, 550, 1650, 800], [1240, 675, 1400, 750]], device=sam.device
    )
    image2_boxes = torch.tensor(
        [[450, 170, 520, 350], [350, 190, 450, 350], [500, 170, 580, 350], [580, 170, 640, 350]], device=sam.device
    )
    resize_transform = package.ResizeLongestSide(sam.image_encoder.img_size)

    def prepare_image(image, transform, device):
        image = transform.apply_image(image)
        image = torch.as_tensor(image, device=device.device)
        return image.permute(2, 0, 1).contiguous()

    batched_input = [
        {"image": prepare_image(image1, resize_transform, sam),
         "boxes": resize_transform.apply_boxes_torch(image1_boxes, image1.shape[:2]), "original_size": image1.shape[:2]},
        {"image": prepare_image(image2, resize_transform, sam),
         "boxes": resize_transform.apply_boxes_torch(image2_boxes, image2.shape[:2]), "original_size": image2.shape[:2]},
    ]
    return sam(batched_input, multimask_output=False)


def test_predictor_notebook_gives_metas_answers(models):
    truck = shared_image("truck.jpg")
    expected = predictor_notebook(META, models["segment_anything"], truck)
    found = predictor_notebook(OURS, models["lang_sam"], truck)
    assert list(found) == list(expected)
    for step in expected:
        assert_same_outputs(expected[step], found[step])


def test_batched_forward_notebook_gives_metas_answers(models):
    truck, groceries = shared_image("truck.jpg"), shared_image("groceries.jpg")
    expected = batched_notebook(META, models["segment_anything"], truck, groceries)
    found = batched_notebook(OURS, models["lang_sam"], truck, groceries)
    assert len(found) == len(expected) == 2
    for theirs, ours in zip(expected, found):
        assert list(ours) == list(theirs) == ["masks", "iou_predictions", "low_res_logits"]
        assert ours["masks"].shape == theirs["masks"].shape
        assert_same_outputs(*(as_numpy([r["masks"], r["iou_predictions"], r["low_res_logits"]]) for r in (theirs, ours)))


def test_true_vit_b_through_both_registries(tmp_path):
    """build_sam_vit_b and sam_model_registry load a real-size vit_b file (Meta's model saved) into
    the same weights; the notebook's prompts then agree on one shared embedding (the encoder at
    this size is compared in test_sam_reference.py)."""
    reference = META.sam_model_registry["vit_b"]().eval()
    checkpoint = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(reference.state_dict(), checkpoint)
    ours = OURS.sam_model_registry["vit_b"](checkpoint=checkpoint)
    assert OURS.sam_model_registry["vit_b"] is OURS.build_sam_vit_b
    assert isinstance(ours, OURS.Sam) and not ours.training
    assert ours.state_dict().keys() == reference.state_dict().keys()
    assert all(torch.equal(ours.state_dict()[key], value) for key, value in reference.state_dict().items())

    size = (1200, 1800)
    features = torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(0))
    theirs = META.SamPredictor(reference)
    theirs.features, theirs.original_size, theirs.input_size = features, size, (683, 1024)
    theirs.is_image_set = True
    mine = OURS.SamPredictor(ours)
    mine.set_embedding(ImageEmbedding(features, size, (683, 1024)))
    expected, found = predictor_steps(theirs, size), predictor_steps(mine, size)
    for step in expected:
        assert_same_outputs(expected[step], found[step])


def test_public_surface_matches_metas(models):
    reference, ours = models["segment_anything"], models["lang_sam"]
    assert ours.state_dict().keys() == reference.state_dict().keys()  # pixel_mean/std not persistent
    assert (ours.image_format, ours.mask_threshold, ours.device) == (reference.image_format, reference.mask_threshold, reference.device)
    torch.testing.assert_close(ours.pixel_mean, reference.pixel_mean)
    torch.testing.assert_close(ours.pixel_std, reference.pixel_std)
    pixels = torch.rand(3, 600, 1024) * 255
    torch.testing.assert_close(ours.preprocess(pixels), reference.preprocess(pixels))
    logits = torch.randn(2, 3, 256, 256)
    torch.testing.assert_close(ours.postprocess_masks(logits, (600, 1024), (750, 1280)),
                               reference.postprocess_masks(logits, (600, 1024), (750, 1280)))

    image = synthetic_image(300, 500)
    theirs, mine = META.SamPredictor(reference), OURS.SamPredictor(ours)
    assert (mine.is_image_set, mine.features, mine.device) == (False, None, theirs.device)
    theirs.set_image(image)
    mine.set_image(image)
    assert mine.is_image_set and (mine.original_size, mine.input_size) == (theirs.original_size, theirs.input_size)
    torch.testing.assert_close(mine.features, theirs.features, atol=5e-5, rtol=0)


def test_resize_longest_side_matches_metas():
    theirs, mine = MetaResizeLongestSide(1024), OURS.ResizeLongestSide(1024)
    image = synthetic_image(375, 500)
    np.testing.assert_array_equal(mine.apply_image(image), theirs.apply_image(image))
    assert mine.get_preprocess_shape(375, 500, 1024) == theirs.get_preprocess_shape(375, 500, 1024)
    coords, boxes = np.array([[[10.0, 20.5], [499, 374]]]), np.array([[5, 6, 300, 200], [0, 0, 500, 375]])
    for ours_value, meta_value in (
        (mine.apply_coords(coords, (375, 500)), theirs.apply_coords(coords, (375, 500))),
        (mine.apply_boxes(boxes, (375, 500)), theirs.apply_boxes(boxes, (375, 500))),
        (mine.apply_coords_torch(torch.tensor(coords), (375, 500)), theirs.apply_coords_torch(torch.tensor(coords), (375, 500))),
        (mine.apply_boxes_torch(torch.tensor(boxes), (375, 500)), theirs.apply_boxes_torch(torch.tensor(boxes), (375, 500))),
    ):
        assert type(ours_value) is type(meta_value) and ours_value.dtype == meta_value.dtype
        np.testing.assert_array_equal(np.asarray(ours_value), np.asarray(meta_value))
    # Meta's apply_image_torch sizes its output from shape[0] and shape[1] (batch and channels), so
    # it is checked against its docstring (a BxCxHxW batch, longest side to target_length) instead.
    batch = torch.rand(2, 3, 375, 500) * 255
    expected = torch.nn.functional.interpolate(batch, (768, 1024), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(mine.apply_image_torch(batch), expected)


def test_bgr_input_is_the_flipped_rgb_array(models):
    rgb = shared_image("dog.jpg")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    from_bgr, from_rgb = OURS.SamPredictor(models["lang_sam"]), OURS.SamPredictor(models["lang_sam"])
    from_bgr.set_image(bgr, image_format="BGR")
    from_rgb.set_image(rgb)
    assert torch.equal(from_bgr.features, from_rgb.features)
    theirs = META.SamPredictor(models["segment_anything"])
    theirs.set_image(bgr, image_format="BGR")
    torch.testing.assert_close(from_bgr.features, theirs.features, atol=5e-5, rtol=0)


# --- notebooks/automatic_mask_generator_example.ipynb ----------------------------------------------

def amg_notebook(package: ModuleType | SimpleNamespace, sam, image: np.ndarray) -> tuple[list[dict], list[dict]]:
    """The notebook's two generators, points_per_side lowered from 32 to 4 to keep the test fast."""
    mask_generator = package.SamAutomaticMaskGenerator(sam, points_per_side=4)
    masks = mask_generator.generate(image)
    mask_generator_2 = package.SamAutomaticMaskGenerator(
        model=sam, points_per_side=4, pred_iou_thresh=0.86, stability_score_thresh=0.92, crop_n_layers=1,
        crop_n_points_downscale_factor=2, min_mask_region_area=100,
    )
    masks2 = mask_generator_2.generate(image)
    return masks, masks2


def small_photo(name: str, width: int = 400) -> np.ndarray:
    image = Image.fromarray(shared_image(name))
    return np.asarray(image.resize((width, round(image.height * width / image.width))))


def test_automatic_mask_generator_notebook_gives_metas_records(amg_models):
    image = small_photo("dog.jpg")
    expected = amg_notebook(META, amg_models["segment_anything"], image)
    found = amg_notebook(OURS, amg_models["lang_sam"], image)
    for theirs, ours in zip(expected, found):
        assert_same_records(theirs, ours)


# --- scripts/amg.py: an equivalent harness, its options and outputs ---------------------------------

def amg_parser() -> argparse.ArgumentParser:
    """amg.py's command line: input, output, model, device, RLE switch and the AMG settings."""
    parser = argparse.ArgumentParser()
    for flag in ("--input", "--output", "--model-type", "--checkpoint"):
        parser.add_argument(flag, type=str, required=True)
    parser.add_argument("--device", type=str, default="cuda")
    parser.add_argument("--convert-to-rle", action="store_true")
    for flag, kind in (("points-per-side", int), ("points-per-batch", int), ("pred-iou-thresh", float),
                       ("stability-score-thresh", float), ("stability-score-offset", float), ("box-nms-thresh", float),
                       ("crop-n-layers", int), ("crop-nms-thresh", float), ("crop-overlap-ratio", int),
                       ("crop-n-points-downscale-factor", int), ("min-mask-region-area", int)):
        parser.add_argument(f"--{flag}", type=kind, default=None)
    return parser


AMG_SETTINGS = ("points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh",
                "stability_score_offset", "box_nms_thresh", "crop_n_layers", "crop_nms_thresh", "crop_overlap_ratio",
                "crop_n_points_downscale_factor", "min_mask_region_area")
METADATA_HEADER = ("id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,stability_score,"
                   "crop_box_x0,crop_box_y0,crop_box_w,crop_box_h")


def write_masks_to_folder(masks: list[dict], path: str) -> None:
    rows = [METADATA_HEADER]
    for i, mask_data in enumerate(masks):
        cv2.imwrite(os.path.join(path, f"{i}.png"), mask_data["segmentation"] * 255)
        rows.append(",".join(str(x) for x in [
            i, mask_data["area"], *mask_data["bbox"], *mask_data["point_coords"][0], mask_data["predicted_iou"],
            mask_data["stability_score"], *mask_data["crop_box"],
        ]))
    Path(path, "metadata.csv").write_text("\n".join(rows))


def amg_main(package: ModuleType | SimpleNamespace, argv: list[str]) -> None:
    """amg.py's main: every image of --input through the generator, written as amg.py writes it."""
    args = amg_parser().parse_args(argv)
    sam = package.sam_model_registry[args.model_type](checkpoint=args.checkpoint)
    sam.to(device=args.device)
    output_mode = "coco_rle" if args.convert_to_rle else "binary_mask"
    amg_kwargs = {key: getattr(args, key) for key in AMG_SETTINGS if getattr(args, key) is not None}
    generator = package.SamAutomaticMaskGenerator(sam, output_mode=output_mode, **amg_kwargs)
    targets = [args.input] if not os.path.isdir(args.input) else [
        os.path.join(args.input, f) for f in sorted(os.listdir(args.input)) if not os.path.isdir(os.path.join(args.input, f))
    ]
    os.makedirs(args.output, exist_ok=True)
    for target in targets:
        image = cv2.imread(target)
        if image is None:
            continue
        masks = generator.generate(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        save_base = os.path.join(args.output, os.path.splitext(os.path.basename(target))[0])
        if output_mode == "binary_mask":
            os.makedirs(save_base, exist_ok=False)
            write_masks_to_folder(masks, save_base)
        else:
            with open(save_base + ".json", "w") as f:
                json.dump(masks, f)


def read_folder_records(folder: Path) -> list[dict]:
    """amg.py's PNG + metadata.csv output back as generator records."""
    with open(folder / "metadata.csv") as f:
        rows = list(csv.DictReader(f))
    return [{
        "segmentation": cv2.imread(str(folder / f"{row['id']}.png"), cv2.IMREAD_GRAYSCALE) > 0,
        "area": int(row["area"]),
        "bbox": [float(row[k]) for k in ("bbox_x0", "bbox_y0", "bbox_w", "bbox_h")],
        "predicted_iou": float(row["predicted_iou"]),
        "point_coords": [[float(row["point_input_x"]), float(row["point_input_y"])]],
        "stability_score": float(row["stability_score"]),
        "crop_box": [int(row[k]) for k in ("crop_box_x0", "crop_box_y0", "crop_box_w", "crop_box_h")],
    } for row in rows]


def read_json_records(path: Path) -> list[dict]:
    records = json.loads(path.read_text())
    for record in records:
        record["segmentation"] = mask_utils.decode(record["segmentation"]).astype(bool)
    return records


@pytest.fixture(scope="module")
def amg_inputs(tmp_path_factory) -> Path:
    """A photo at 400 pixels wide and a file that is not an image (amg.py skips it)."""
    folder = tmp_path_factory.mktemp("amg-input")
    cv2.imwrite(str(folder / "groceries.jpg"), cv2.cvtColor(small_photo("groceries.jpg"), cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.parametrize("rle", [False, True], ids=["png-and-csv", "coco-rle-json"])
def test_amg_script_writes_metas_outputs(tiny_in_registries, checkpoints, amg_inputs, tmp_path, rle):
    options = ["--model-type", TINY, "--checkpoint", str(checkpoints["confident"]), "--device", "cpu",
               "--points-per-side", "4", "--pred-iou-thresh", "0.8", "--min-mask-region-area", "50",
               *(["--convert-to-rle"] if rle else [])]
    for side, package in SIDES.items():
        amg_main(package, ["--input", str(amg_inputs), "--output", str(tmp_path / side), *options])
    assert sorted(os.listdir(tmp_path / "lang_sam")) == sorted(os.listdir(tmp_path / "segment_anything"))
    if rle:
        expected, found = (read_json_records(tmp_path / side / "groceries.json") for side in SIDES)
    else:
        assert (tmp_path / "lang_sam" / "groceries" / "metadata.csv").read_text().splitlines()[0] == METADATA_HEADER
        expected, found = (read_folder_records(tmp_path / side / "groceries") for side in SIDES)
    assert_same_records(expected, found)


# --- clear errors -----------------------------------------------------------------------------------

def test_unknown_model_type_lists_the_names():
    with pytest.raises(InvalidOptionError, match="'vit_x'.*default, vit_h, vit_l, vit_b"):
        OURS.sam_model_registry["vit_x"]


def test_bad_batched_input_names_the_key(models):
    sam = models["lang_sam"]
    image = torch.zeros(3, 768, 1024, dtype=torch.uint8)
    with pytest.raises(InvalidPromptError, match=r"batched_input\[0\] has no 'original_size'"):
        sam([{"image": image}], multimask_output=False)
    with pytest.raises(InvalidPromptError, match=r"batched_input\[1\] has only one of 'point_coords'"):
        sam([{"image": image, "original_size": (768, 1024)},
             {"image": image, "original_size": (768, 1024), "point_coords": torch.zeros(1, 1, 2)}], multimask_output=False)
    with pytest.raises(InvalidPromptError, match=r"\['boxes'\] must be a tensor"):
        sam([{"image": image, "original_size": (768, 1024), "boxes": [[0, 0, 5, 5]]}], multimask_output=False)
    with pytest.raises(InvalidImageError, match=r"batched_input\[0\]\['image'\] must be a \(3, h, w\) tensor"):
        sam([{"image": np.zeros((768, 1024, 3)), "original_size": (768, 1024)}], multimask_output=False)
    with pytest.raises(InvalidImageError, match="ResizeLongestSide"):
        sam([{"image": image, "original_size": (100, 100)}], multimask_output=False)
    with pytest.raises(InvalidOptionError, match="image_format"):
        OURS.SamPredictor(sam).set_image(synthetic_image(20, 30), image_format="BGRA")
