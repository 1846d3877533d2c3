"""SAM 2.1 and SAM-HQ through lang_sam.families.transformers_sam: tiny random models saved with
save_pretrained and loaded through the public paths (a folder as sam_checkpoint, a folder NAME in
the checkpoint folder), each prompt checked against transformers' model, processor and
post-processing called directly with the same prompts."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from lang_sam import LangSAM
from lang_sam.errors import InvalidOptionError, InvalidPromptError, ModelLoadError
from lang_sam.families.loading import load_segmenter
from lang_sam.families.transformers_sam import DECODE_CHUNK, TransformersSegmenter
from lang_sam.registry import FAMILY_MODELS, sam_names
from lang_sam.segmenter.embedding_store import EmbeddingStore
from lang_sam.segmenter.build import build_sam_from_architecture
from tests.conftest import TINY_A, TINY_SAMS, synthetic_image

IMAGE = synthetic_image(300, 400, seed=3)


def direct_masks(direct, multimask: bool, **prompts):
    """Masks, IoU and low-res logits from the transformers model called directly on IMAGE."""
    model, processor = direct
    inputs = processor(images=IMAGE, return_tensors="pt", **prompts)
    arguments = {key: value.float() if value.is_floating_point() else value for key, value in inputs.items()
                 if key not in ("original_sizes", "reshaped_input_sizes")}
    with torch.no_grad():
        outputs = model(**arguments, multimask_output=multimask)
    sizes = [inputs["original_sizes"]] + ([inputs["reshaped_input_sizes"]] if "reshaped_input_sizes" in inputs else [])
    masks = processor.post_process_masks(outputs.pred_masks, *sizes)[0]
    return masks, outputs.iou_scores[0], outputs.pred_masks[0]


def assert_same(decoded, expected):
    masks, iou, low_res = expected
    assert decoded.masks.dtype == torch.bool and torch.equal(decoded.masks, masks)
    torch.testing.assert_close(decoded.iou, iou.float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(decoded.low_res_logits, low_res.float(), atol=1e-5, rtol=0)


def test_a_folder_is_recognised_by_its_model_type(segmenter, family_dir):
    assert isinstance(segmenter, TransformersSegmenter) and segmenter.family == family_dir.name.removeprefix("tiny-")
    assert segmenter.name == family_dir.name


@pytest.mark.parametrize("multimask", [False, True])
def test_boxes_equal_the_model_called_directly(segmenter, direct, multimask):
    boxes = [[10.0, 20.0, 200.0, 250.0], [50.0, 60.0, 390.0, 290.0], [0.0, 0.0, 400.0, 300.0]]
    decoded = segmenter.decode(segmenter.embed(segmenter.preprocess(IMAGE)), boxes=torch.tensor(boxes), multimask_output=multimask)
    assert decoded.masks.shape == (3, 3 if multimask else 1, 300, 400)
    assert_same(decoded, direct_masks(direct, multimask, input_boxes=[boxes]))
    assert 0 < decoded.masks.float().mean() < 1  # real masks, not all empty or full


def test_points_box_and_mask_prompt_equal_the_model_called_directly(segmenter, direct):
    embedding = segmenter.embed(segmenter.preprocess(IMAGE))
    points, labels = [[120.0, 100.0], [300.0, 200.0]], [1, 0]
    decoded = segmenter.decode(embedding, point_coords=torch.tensor([points]), point_labels=torch.tensor([labels]), multimask_output=True)
    assert_same(decoded, direct_masks(direct, True, input_points=[[points]], input_labels=[[labels]]))
    box = [30.0, 40.0, 330.0, 280.0]
    with_box = segmenter.decode(embedding, point_coords=torch.tensor([points]), point_labels=torch.tensor([labels]),
                                boxes=torch.tensor([box]))
    assert_same(with_box, direct_masks(direct, False, input_points=[[points]], input_labels=[[labels]], input_boxes=[[box]]))
    # a previous low-res mask as the dense prompt, as transformers takes it
    previous = decoded.low_res_logits[:, :1]
    refined = segmenter.decode(embedding, point_coords=torch.tensor([points]), point_labels=torch.tensor([labels]), mask_input=previous)
    model, processor = direct
    inputs = processor(images=IMAGE, input_points=[[points]], input_labels=[[labels]], return_tensors="pt")
    with torch.no_grad():
        outputs = model(pixel_values=inputs["pixel_values"], input_points=inputs["input_points"].float(),
                        input_labels=inputs["input_labels"], input_masks=previous[0][None], multimask_output=False)
    torch.testing.assert_close(refined.low_res_logits, outputs.pred_masks[0].float(), atol=1e-5, rtol=0)
    assert not torch.equal(refined.low_res_logits, decoded.low_res_logits[:, :1])


def test_many_boxes_are_decoded_in_chunks_that_equal_one_by_one(segmenter):
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, [400, 300], size=(DECODE_CHUNK + 5, 2, 2))
    boxes = torch.tensor(np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1), dtype=torch.float32)
    embedding = segmenter.embed(segmenter.preprocess(IMAGE))
    together = segmenter.decode(embedding, boxes=boxes)
    for index in (0, DECODE_CHUNK - 1, DECODE_CHUNK, len(boxes) - 1):
        alone = segmenter.decode(embedding, boxes=boxes[index:index + 1])
        assert torch.equal(together.masks[index:index + 1], alone.masks)
        torch.testing.assert_close(together.iou[index:index + 1], alone.iou, atol=1e-5, rtol=0)


def test_langsam_by_name_from_the_checkpoint_folder_end_to_end(family_dir, direct, tiny_detector_dir):
    name = family_dir.name
    assert name in sam_names(family_dir.parent) and sam_names(family_dir.parent)[:3] == ["vit_h", "vit_l", "vit_b"]
    model = LangSAM(name, detector=tiny_detector_dir, device="cpu", dtype="float32", checkpoint_dir=family_dir.parent)
    result = model.predict(IMAGE, "cat, dog", box_threshold=0.0, text_threshold=0.0, max_detections=4)
    assert model.sam_type == name and result.num_detections == 4 and set(result.phrases) <= {"cat", "dog"}
    expected, _, _ = direct_masks(direct, False, input_boxes=[result.boxes.tolist()])
    assert np.array_equal(result.masks, expected[:, 0].numpy())
    # clicks and boxes go the same way; a click alone takes the best of three
    clicked = model.predict(IMAGE, points=[[150, 120]])
    masks, iou, _ = direct_masks(direct, True, input_points=[[[[150.0, 120.0]]]], input_labels=[[[1]]])
    assert np.array_equal(clicked.masks[0], masks[0, int(iou[0].argmax())].numpy())
    description = model.describe()
    assert name in description and "parameters" in description
    with pytest.raises(InvalidOptionError, match="not a SAM v1 model"):
        model.sam


def test_threads_share_one_segmenter(segmenter):
    boxes = [torch.tensor([[10.0 * i, 10.0, 200.0 + 10 * i, 250.0]]) for i in range(2)]
    images = [synthetic_image(300, 400, seed=seed) for seed in range(2)]
    alone = [segmenter.decode(segmenter.embed(segmenter.preprocess(image)), boxes=box) for image, box in zip(images, boxes)]
    answers = [None] * 2

    def work(index):
        answers[index] = segmenter.decode(segmenter.embed(segmenter.preprocess(images[index])), boxes=boxes[index])

    threads = [threading.Thread(target=work, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(torch.equal(answer.masks, reference.masks) for answer, reference in zip(answers, alone))


def test_bfloat16_runs_and_stays_close(family_dir, segmenter):
    half = TransformersSegmenter(family_dir, device="cpu", dtype="bfloat16")
    box = torch.tensor([[50.0, 60.0, 390.0, 290.0]])
    low = half.decode(half.embed(half.preprocess(IMAGE)), boxes=box)
    full = segmenter.decode(segmenter.embed(segmenter.preprocess(IMAGE)), boxes=box)
    assert half.model.dtype == torch.bfloat16 and low.iou.dtype == torch.float32 and torch.isfinite(low.low_res_logits).all()
    agreement = (low.masks == full.masks).float().mean()
    assert agreement > 0.9


def test_embeddings_round_trip_through_the_servers_store(segmenter, tmp_path):
    embedding = segmenter.embed(segmenter.preprocess(IMAGE))
    store = EmbeddingStore(tmp_path)
    store.put(segmenter.name, "image", embedding)
    again = store.get(segmenter.name, "image")
    assert isinstance(again.features, tuple) and all(torch.equal(a, b) for a, b in zip(again.features, embedding.features))
    box = torch.tensor([[10.0, 20.0, 200.0, 250.0]])
    assert torch.equal(segmenter.decode(again, boxes=box).masks, segmenter.decode(embedding, boxes=box).masks)


@pytest.mark.parametrize(("name", "entry"), [("sam2.1-hiera-tiny", "sam2.1-hiera-tiny"), ("sam-hq-vit-base", "sam-hq-vit-base"),
                                             ("sam2.1_hiera_base_plus", "sam2.1-hiera-base-plus")])  # lang-segment-anything's name
def test_a_registry_name_not_downloaded_says_how_to_get_it(name, entry, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE") as raised:
        load_segmenter(name, device="cpu")
    assert f"'{FAMILY_MODELS[entry].repo_id}'" in str(raised.value)


def test_wrong_inputs_say_what_to_do(family_dir, tmp_path, tiny_detector_dir):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelLoadError, match="'bert' model"):
        TransformersSegmenter(tmp_path)
    model = LangSAM(sam_checkpoint=family_dir, detector=tiny_detector_dir, device="cpu", dtype="float32")
    sam_v1 = LangSAM.from_parts(build_sam_from_architecture(TINY_SAMS[TINY_A]), model.detector)
    with pytest.raises(InvalidOptionError, match="prepare it again"):
        model.predict(sam_v1.prepare(IMAGE), "cat")
    with pytest.raises(InvalidPromptError, match="outside"):
        model.predict(IMAGE, points=[[500, 10]])


def test_a_sam2_video_folder_segments_images_with_its_image_weights(tmp_path):
    """facebook/sam2.1-hiera-* are saved as Sam2VideoModel: the image segmenter reads the image
    model's weights out of them, and answers as Sam2Model loaded from the same folder."""
    from transformers import Sam2Model, Sam2Processor

    from tests.video.conftest import save_tiny_sam2_video

    folder = save_tiny_sam2_video(tmp_path / "sam2.1-video")
    segmenter = load_segmenter(checkpoint=folder, device="cpu", dtype="float32")
    assert segmenter.family == "sam2_video" and isinstance(segmenter, TransformersSegmenter)
    box = [[10.0, 20.0, 200.0, 250.0]]
    decoded = segmenter.decode(segmenter.embed(segmenter.preprocess(IMAGE)), boxes=torch.tensor(box))
    assert_same(decoded, direct_masks((Sam2Model.from_pretrained(folder).eval(), Sam2Processor.from_pretrained(folder)), False,
                                      input_boxes=[box]))
