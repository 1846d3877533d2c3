"""SAM 3's clicks and boxes on an object, through its tracker: a tiny random Sam3VideoModel saved as
facebook/sam3 ships (detector, tracker and tracker neck in one folder), loaded through LangSAM, and
checked in float32 against transformers' Sam3TrackerModel and Sam3TrackerProcessor called directly
the documented way on the same folder: masks equal, scores within 1e-5. Also embed + decode, the
server's /embed + /decode path, the backbone held once, one trunk pass shared by text and clicks
on an image, and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lang_sam.errors import InvalidPromptError
from lang_sam.families.base import Segmenter, TextSegmenter
from tests.families.test_sam3 import images, sam3_dir  # noqa: F401 - the tiny SAM 3 image model's fixtures
from tests.video.test_sam3_video import DETECTION_THRESHOLD, save_tiny_sam3_video

CLICK = [200.0, 150.0]
BOXES = [[100.0, 50.0, 300.0, 250.0], [350.0, 120.0, 590.0, 390.0]]


def save_as_released(folder: Path) -> Path:
    """The tiny SAM 3 video model in facebook/sam3's layout: transformers 5.25's Sam3VideoModel.save_pretrained
    writes the tracker's weights under tracker_model.tracker_model.*, the released checkpoint (and the
    conversion that Sam3TrackerModel.from_pretrained applies) has them under tracker_model.*."""
    from safetensors.torch import load_file, save_file

    save_tiny_sam3_video(folder)
    weights = load_file(folder / "model.safetensors")
    save_file({name.replace("tracker_model.tracker_model.", "tracker_model.", 1): tensor for name, tensor in weights.items()},
              folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="module")
def sam3_video_dir(tmp_path_factory) -> Path:
    return save_as_released(tmp_path_factory.mktemp("tiny-sam3-released"))


@pytest.fixture(scope="module")
def tracker(sam3_video_dir):
    """Sam3TrackerModel and Sam3TrackerProcessor as transformers' documentation loads them."""
    from transformers import Sam3TrackerModel, Sam3TrackerProcessor

    return Sam3TrackerModel.from_pretrained(sam3_video_dir).eval(), Sam3TrackerProcessor.from_pretrained(sam3_video_dir)


@pytest.fixture(scope="module")
def model(sam3_video_dir, tmp_path_factory):
    from lang_sam import LangSAM

    return LangSAM(sam_checkpoint=sam3_video_dir, detector=tmp_path_factory.mktemp("no") / "detector", device="cpu",
                   dtype="float32")


def direct(tracker, image: np.ndarray, multimask: bool, **prompts):
    """The tracker on one image and prompts (the processor's nesting): (masks (B, M, H, W), scores (B, M))."""
    network, processor = tracker
    inputs = processor(images=Image.fromarray(image), return_tensors="pt", **prompts)
    with torch.no_grad():
        outputs = network(**inputs, multimask_output=multimask)
    return processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])[0].numpy(), outputs.iou_scores[0].numpy()


def test_a_click_points_and_boxes_equal_sam3_tracker_model_called_directly(model, tracker, images):
    image = images[0]
    assert isinstance(model.segmenter, Segmenter) and isinstance(model.segmenter, TextSegmenter)
    masks, scores = direct(tracker, image, True, input_points=[[[CLICK]]], input_labels=[[[1]]])
    one = model.predict(image, points=[CLICK])  # a single click: the best of three, as SAM's demo
    best = int(scores[0].argmax())
    assert np.array_equal(one.masks[0], masks[0, best]) and one.masks[0].any() and not one.masks[0].all()
    np.testing.assert_allclose(one.mask_scores, scores[0, best:best + 1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(one.candidate_scores[0], scores[0], rtol=0, atol=1e-5)
    clicks = [[200.0, 150.0], [420.0, 300.0]]
    masks, scores = direct(tracker, image, False, input_points=[[clicks]], input_labels=[[[1, 0]]])
    refined = model.predict(image, points=clicks, point_labels=[1, 0])
    assert np.array_equal(refined.masks[0], masks[0, 0])
    np.testing.assert_allclose(refined.mask_scores, scores[0], rtol=0, atol=1e-5)
    masks, scores = direct(tracker, image, False, input_boxes=[BOXES])
    boxed = model.predict(image, boxes=BOXES)
    assert np.array_equal(boxed.masks, masks[:, 0]) and np.array_equal(boxed.boxes, np.array(BOXES, np.float32))
    np.testing.assert_allclose(boxed.mask_scores, scores[:, 0], rtol=0, atol=1e-5)


def test_embed_once_then_decode_gives_what_predict_gives(model, images):
    image = images[0]
    embedding = model.embed(image)
    assert model.embed(image) is embedding, "kept in the embedding cache"
    assert embedding.original_size == image.shape[:2]
    decoded = model.decode(embedding, points=[CLICK], boxes=[BOXES[0]])
    predicted = model.predict(image, points=[CLICK], boxes=[BOXES[0]])
    assert np.array_equal(decoded.masks, predicted.masks) and np.array_equal(decoded.mask_scores, predicted.mask_scores)
    assert decoded.low_res_logits.shape == (1, *model.segmenter.mask_input_size) == (1, 16, 16)


def test_the_servers_embed_and_decode_answer_what_the_library_returns(sam3_video_dir, model, images, tmp_path):
    import shutil

    from lang_sam.interfaces.limits import Limits
    from lang_sam.interfaces.models import ModelPool
    from lang_sam.interfaces.server.api import EmbeddingStore, predict_batch
    from lang_sam.interfaces.server.validation import EmbedRequest, parse_request
    from lang_sam.settings import Settings

    shutil.copytree(sam3_video_dir, tmp_path / "checkpoints" / "tiny-sam3")
    pool = ModelPool(Settings(sam_type="tiny-sam3", device="cpu", dtype="float32", checkpoint_dir=str(tmp_path / "checkpoints")))
    store = EmbeddingStore(tmp_path / "store")
    (_, (image_id, cached), _), = predict_batch(pool, [EmbedRequest(images[0], "tiny-sam3")], store)
    request = parse_request({"mode": "decode", "image_id": image_id, "points": [CLICK], "point_labels": [1]}, "tiny-sam3",
                            Limits(), check_sam=str)
    (_, answer, _), = predict_batch(pool, [request], store)
    assert not cached and answer.to_json() == model.predict(images[0], points=[CLICK]).to_json()


def test_the_tracker_holds_the_detectors_backbone_which_transformers_loads_alike(model, tracker, sam3_video_dir):
    from transformers import Sam3Model

    segmenter = model.segmenter
    assert segmenter.prompt_model.vision_encoder.backbone is segmenter.model.vision_encoder.backbone
    detector = Sam3Model.from_pretrained(sam3_video_dir)
    own = dict(tracker[0].vision_encoder.backbone.named_parameters())
    assert all(torch.equal(own[name], weight) for name, weight in detector.vision_encoder.backbone.named_parameters())
    backbone = sum(weight.numel() for weight in own.values())
    both = sum(p.numel() for p in detector.parameters()) + sum(p.numel() for p in tracker[0].parameters())
    assert segmenter.parameter_count() == both - backbone


def direct_text(sam3_video_dir, image: np.ndarray, name: str):
    """Sam3Model and Sam3Processor called the documented way on one image and class (the vision
    encoder on the pixels): (masks (N, H, W), scores (N,)) above DETECTION_THRESHOLD."""
    from transformers import Sam3Model, Sam3Processor

    network, processor = Sam3Model.from_pretrained(sam3_video_dir).eval(), Sam3Processor.from_pretrained(sam3_video_dir)
    inputs = processor(images=Image.fromarray(image), text=name, return_tensors="pt")
    with torch.no_grad():
        outputs = network(**inputs)
    found = processor.post_process_instance_segmentation(outputs, threshold=DETECTION_THRESHOLD, mask_threshold=0.5,
                                                         target_sizes=inputs["original_sizes"].tolist())[0]
    order = found["scores"].argsort(descending=True, stable=True)
    return found["masks"][order].bool().numpy(), found["scores"][order].numpy()


def test_text_and_clicks_on_one_image_share_one_trunk_pass_and_equal_each_model_on_pixels(sam3_video_dir, tracker, images,
                                                                                          tmp_path):
    """The ViT trunk runs once per image whatever the order of text and clicks on it, and each path
    answers exactly (float32) what its transformers model gives when it encodes the pixels itself."""
    from lang_sam import LangSAM

    model = LangSAM(sam_checkpoint=sam3_video_dir, detector=tmp_path / "never-loaded", device="cpu", dtype="float32")
    trunk = model.segmenter.model.vision_encoder.backbone
    assert model.segmenter.prompt_model.vision_encoder.backbone is trunk
    passes = []
    trunk.register_forward_hook(lambda module, inputs, output: passes.append(inputs[0].shape))
    masks, scores = direct_text(sam3_video_dir, images[0], "cup")
    assert len(scores) > 0
    text = model.predict(images[0], "cup", box_threshold=DETECTION_THRESHOLD)
    assert np.array_equal(text.masks, masks) and np.array_equal(text.mask_scores, scores)
    assert len(passes) == 1
    click_masks, click_scores = direct(tracker, images[0], True, input_points=[[[CLICK]]], input_labels=[[[1]]])
    click = model.predict(images[0], points=[CLICK])
    best = int(click_scores[0].argmax())
    assert np.array_equal(click.masks[0], click_masks[0, best]) and np.array_equal(click.candidate_scores[0], click_scores[0])
    assert np.array_equal(model.predict(images[0], "cup", box_threshold=DETECTION_THRESHOLD).masks, masks)
    assert len(passes) == 1, "text, clicks and text again on one image: one trunk pass"

    masks, scores = direct_text(sam3_video_dir, images[1], "cat")
    click_masks, click_scores = direct(tracker, images[1], False, input_boxes=[BOXES[:1]])  # the second box: outside it
    boxed = model.predict(images[1], boxes=BOXES[:1])
    text = model.predict(images[1], "cat", box_threshold=DETECTION_THRESHOLD)
    assert np.array_equal(boxed.masks, click_masks[:, 0]) and np.array_equal(boxed.mask_scores, click_scores[:, 0])
    assert len(scores) > 0 and np.array_equal(text.masks, masks) and np.array_equal(text.mask_scores, scores)
    assert len(passes) == 2, "boxes then text on a second image: one more pass"


def test_text_and_clicks_together_and_a_mask_of_another_size_are_refused(model, images):
    with pytest.raises(InvalidPromptError, match="a text prompt \\(with exemplars\\) or your points and boxes"):
        model.predict(images[0], "cup", points=[CLICK])
    with pytest.raises(InvalidPromptError, match="SAM 3's tracker takes mask_input of \\(16, 16\\).*got \\(256, 256\\)"):
        model.predict(images[0], points=[CLICK], mask_input=np.zeros((256, 256), np.float32))


def test_a_folder_of_sam3_model_alone_refuses_clicks_saying_it_has_no_tracker(sam3_dir, images, tmp_path):
    from lang_sam import LangSAM

    model = LangSAM(sam_checkpoint=sam3_dir, detector=tmp_path / "never-loaded", device="cpu", dtype="float32")
    assert not model.segmenter.takes_clicks_and_boxes and not isinstance(model.segmenter, Segmenter)
    for call in (lambda: model.predict(images[0], points=[CLICK]), lambda: model.embed(images[0])):
        with pytest.raises(InvalidPromptError, match="segments text prompts \\(its checkpoint holds no SAM 3 tracker"):
            call()


def test_segment_everything_through_the_tracker_equals_sam3_tracker_model_on_the_grid(sam3_video_dir, tracker, tmp_path):
    """SAM 3 with its tracker segments everything: the generator's records equal Sam3TrackerModel called
    directly on the same point grid with segment-anything's filters written out (tests/families/test_everything.py);
    lang-sam everything writes those records."""
    import json

    from pycocotools import mask as mask_utils

    from lang_sam.families.loading import load_segmenter
    from lang_sam.interfaces.cli import main
    from lang_sam.segmenter import SamAutomaticMaskGenerator
    from tests.families.test_everything import IMAGE, FIELDS, assert_equal_records, assert_upscaled_logits_give_decodes_masks, \
        expected_records

    segmenter = load_segmenter(checkpoint=sam3_video_dir, device="cpu", dtype="float32")
    assert segmenter.segments_everything and segmenter.family == "sam3"
    assert_upscaled_logits_give_decodes_masks(segmenter)
    options = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, stability_score_offset=1.0, box_nms_thresh=1.0)
    found = SamAutomaticMaskGenerator(segmenter, points_per_batch=5, **options).generate(IMAGE)
    expected = expected_records(tracker, IMAGE, **options)
    assert len(expected) == 48, "three masks for each of 16 points, none filtered"
    assert_equal_records(found, expected)

    Image.fromarray(IMAGE).save(tmp_path / "scene.png")
    assert main(["everything", str(tmp_path / "scene.png"), "--sam-checkpoint", str(sam3_video_dir), "--out", str(tmp_path / "out"),
                 "--points-per-side", "2", "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--device", "cpu",
                 "--dtype", "float32"]) == 0
    written = json.loads((tmp_path / "out" / "scene.json").read_text())["masks"]
    records = sorted(SamAutomaticMaskGenerator(segmenter, points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0)
                     .generate(IMAGE), key=lambda record: -record["area"])
    assert len(written) == len(records) > 0
    for mask, record in zip(written, records):
        rle = {"size": mask["segmentation"]["size"], "counts": mask["segmentation"]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), record["segmentation"])
        assert {key: mask[key] for key in FIELDS[1:]} == {key: record[key] for key in FIELDS[1:]}
