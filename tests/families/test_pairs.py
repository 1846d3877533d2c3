"""Any segmenter with any detector, end to end: LangSAM on SAM 2.1 + OWLv2 equals the two
transformers models called directly one after the other, and ``lang-sam eval`` compares pairs on
a COCO dataset the way a user chooses between them."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from lang_sam import LangSAM
from lang_sam.datasets.evaluation import mask_iou
from lang_sam.families.detectors import Owlv2Detector
from lang_sam.interfaces.cli import main
from tests.families.conftest import save_tiny_segmenter
from tests.training.conftest import write_ellipse_dataset


@pytest.fixture(scope="module")
def sam2_dir(tmp_path_factory):
    return save_tiny_segmenter("sam2", tmp_path_factory.mktemp("pair") / "tiny-sam2")


@pytest.fixture(scope="module")
def ellipses(tmp_path_factory):
    return write_ellipse_dataset(tmp_path_factory.mktemp("pair-ellipses"))


def test_sam2_with_owlv2_equals_both_models_called_directly(sam2_dir, owlv2_dir, ellipses):
    from transformers import AutoModel, AutoProcessor, Owlv2ForObjectDetection, Owlv2Processor

    _, images = ellipses
    image = np.asarray(Image.open(sorted(images.iterdir())[0]).convert("RGB"))
    model = LangSAM(sam_checkpoint=sam2_dir, detector=owlv2_dir, device="cpu", dtype="float32")
    assert isinstance(model.detector, Owlv2Detector) and model.segmenter.family == "sam2"
    result = model.predict(image, "ellipse, cat", box_threshold=0.0, text_threshold=0.0, max_detections=5)
    assert result.num_detections == 5 and set(result.phrases) <= {"ellipse", "cat"}
    # the detector: OWLv2's processor, model and post-processing, the best five boxes
    owl_processor, owl = Owlv2Processor.from_pretrained(owlv2_dir), Owlv2ForObjectDetection.from_pretrained(owlv2_dir).eval()
    inputs = owl_processor(text=[["ellipse", "cat"]], images=Image.fromarray(image), return_tensors="pt")
    with torch.no_grad():
        outputs = owl(**inputs)
    side = max(image.shape[:2])
    found = owl_processor.post_process_grounded_object_detection(outputs, threshold=0.0, target_sizes=[(side, side)])[0]
    best = found["scores"].argsort(descending=True)[:5]
    height, width = image.shape[:2]
    expected_boxes = found["boxes"][best].clamp(min=0).numpy()
    expected_boxes[:, [0, 2]] = expected_boxes[:, [0, 2]].clip(max=width)
    expected_boxes[:, [1, 3]] = expected_boxes[:, [1, 3]].clip(max=height)
    np.testing.assert_allclose(result.boxes, expected_boxes, atol=1e-3)
    # the segmenter: SAM 2.1 called directly with those boxes
    processor, sam2 = AutoProcessor.from_pretrained(sam2_dir), AutoModel.from_pretrained(sam2_dir).eval()
    sam_inputs = processor(images=image, input_boxes=[result.boxes.tolist()], return_tensors="pt")
    with torch.no_grad():
        sam_outputs = sam2(pixel_values=sam_inputs["pixel_values"], input_boxes=sam_inputs["input_boxes"], multimask_output=False)
    masks = processor.post_process_masks(sam_outputs.pred_masks, sam_inputs["original_sizes"])[0][:, 0].numpy()
    assert np.array_equal(result.masks, masks)


def test_eval_compares_pairs_on_a_coco_dataset(sam2_dir, owlv2_dir, mm_gdino_dir, tiny_detector_dir, ellipses, tmp_path, capsys):
    coco, images = ellipses
    metrics = {}
    for name, detector in (("owlv2", owlv2_dir), ("mm-grounding-dino", mm_gdino_dir), ("grounding-dino", tiny_detector_dir)):
        target = tmp_path / f"{name}.json"
        code = main(["eval", "--coco", str(coco), "--images", str(images), "--sam-checkpoint", str(sam2_dir),
                     "--detector", str(detector), "--device", "cpu", "--dtype", "float32", "--box-threshold", "0",
                     "--text-threshold", "0", "--max-detections", "10", "--limit", "2", "--json", str(target)])
        assert code == 0, capsys.readouterr().err
        metrics[name] = json.loads(target.read_text())
    for name in metrics:  # each pair scored on the same images, all 10 best detections of each
        assert metrics[name]["images"] == 2 and metrics[name]["predictions"] == 2 * 10
        assert 0.0 <= metrics[name]["mask"]["AP"] <= 1.0
    assert "mask AP" in capsys.readouterr().out
    # the segmenter alone on the ground-truth boxes: mean IoU against masks decoded here by transformers
    target = tmp_path / "sam-only.json"
    assert main(["eval", "--coco", str(coco), "--images", str(images), "--sam-checkpoint", str(sam2_dir), "--sam-only",
                 "--device", "cpu", "--dtype", "float32", "--limit", "2", "--json", str(target)]) == 0
    measured = json.loads(target.read_text())
    from transformers import AutoModel, AutoProcessor

    processor, sam2 = AutoProcessor.from_pretrained(sam2_dir), AutoModel.from_pretrained(sam2_dir).eval()
    dataset = json.loads(coco.read_text())
    ious = []
    for info in sorted(dataset["images"], key=lambda info: info["id"])[:2]:
        image = np.asarray(Image.open(images / info["file_name"]).convert("RGB"))
        annotations = [a for a in dataset["annotations"] if a["image_id"] == info["id"]]
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annotations)]
        inputs = processor(images=image, input_boxes=[boxes], return_tensors="pt")
        with torch.no_grad():
            outputs = sam2(pixel_values=inputs["pixel_values"], input_boxes=inputs["input_boxes"], multimask_output=False)
        masks = processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])[0][:, 0].numpy()
        for annotation, mask in zip(annotations, masks):
            rles = mask_utils.frPyObjects(annotation["segmentation"], info["height"], info["width"])
            truth = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
            ious.append(mask_iou(mask, truth))
    assert measured["instances"] == len(ious) and measured["mean_iou"] == pytest.approx(float(np.mean(ious)), abs=1e-6)


def test_the_pool_pairs_any_served_detector_with_a_loaded_segmenter(service_models, owlv2_dir, ellipses):
    from lang_sam.errors import InvalidOptionError
    from lang_sam.interfaces.models import ModelPool
    from lang_sam.interfaces.server.validation import Limits, parse_request
    from lang_sam.settings import Settings
    from tests.conftest import TINY_A

    checkpoints, detector = service_models
    _, images = ellipses
    image = np.asarray(Image.open(sorted(images.iterdir())[1]).convert("RGB"))
    pool = ModelPool(Settings(sam_type=TINY_A, detector=str(detector), checkpoint_dir=str(checkpoints), device="cpu",
                              dtype="float32"), detectors=[str(owlv2_dir)])
    assert pool.detector_names == (str(detector), str(owlv2_dir))
    options = dict(box_threshold=0.0, text_threshold=0.0, max_detections=3)
    paired = pool.predict(image, "ellipse", TINY_A, detector=str(owlv2_dir), **options)
    default = pool.predict(image, "ellipse", TINY_A, **options)
    alone = LangSAM(TINY_A, detector=owlv2_dir, device="cpu", dtype="float32", checkpoint_dir=checkpoints)
    expected = alone.predict(image, "ellipse", **options)
    assert np.array_equal(paired.masks, expected.masks) and np.allclose(paired.boxes, expected.boxes)
    assert not np.allclose(paired.boxes, default.boxes), "the other detector really ran"
    assert pool.get(TINY_A, str(owlv2_dir)).segmenter is pool.get(TINY_A).segmenter, "one segmenter, loaded once"
    assert str(owlv2_dir) in pool.describe(TINY_A, str(owlv2_dir)) and str(detector) in pool.describe(TINY_A)
    with pytest.raises(InvalidOptionError, match="not served here"):
        pool.get(TINY_A, "owlv2-large-patch14-ensemble")
    # the server's request check: a served detector passes, another is refused before any model runs
    payload = {"image": base64.b64encode(sorted(images.iterdir())[1].read_bytes()).decode(), "prompt": "ellipse"}
    assert parse_request({**payload, "detector": str(owlv2_dir)}, TINY_A, Limits(), pool.check, pool.check_detector).detector == str(owlv2_dir)
    with pytest.raises(InvalidOptionError, match="not served here"):
        parse_request({**payload, "detector": "grounding-dino-tiny"}, TINY_A, Limits(), pool.check, pool.check_detector)
