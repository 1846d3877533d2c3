"""SAM 3 through lang_sam.families.sam3: a tiny random Sam3Model and Sam3Processor saved with
save_pretrained, loaded through the public path, checked against Sam3Model and Sam3Processor
called directly the documented way, one class at a time; loading errors, gated hub repos
included (the hub's real error, raised where transformers asks the hub)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lang_sam.errors import CheckpointError, InvalidImageError, InvalidOptionError, InvalidPromptError, ModelLoadError
from lang_sam.families.base import TextSegmenter
from lang_sam.families.sam3 import Sam3TextSegmenter
from tests.conftest import byte_level_clip_tokenizer

ASSETS = Path(__file__).resolve().parents[2] / "assets"
TEXT_TOKENS = 32  # the tiny text encoder's positions
IMAGE_SIZE = 112  # the tiny model's input (SAM 3's is 1008): 8x8 patches of 14 pixels
CLASSES = [["cup", "saucer", "spoon"], ["cat", "sofa"]]


def tiny_sam3_config(vocab_size: int, width: int = 32, image_size: int = IMAGE_SIZE):
    """Every part of SAM 3 shrunk to width (32; SAM 3 video's tracker needs 128) and one or two
    layers, with an image_size-pixel input (a multiple of 14: 112 by default)."""
    from transformers import Sam3Config

    layers, patches = {"num_attention_heads": 2, "intermediate_size": 64}, image_size // 14
    backbone = {"model_type": "sam3_vit_model", "hidden_size": width, "num_hidden_layers": 2, "image_size": image_size,
                "patch_size": 14, "window_size": 4, "global_attn_indexes": [1], "pretrain_image_size": 56, **layers}
    return Sam3Config(
        vision_config={"backbone_config": backbone, "fpn_hidden_size": width,
                       "backbone_feature_sizes": [[4 * patches] * 2, [2 * patches] * 2, [patches] * 2]},
        text_config={"vocab_size": vocab_size, "hidden_size": width, "projection_dim": width, "num_hidden_layers": 1,
                     "max_position_embeddings": TEXT_TOKENS, "bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1,
                     "pad_token_id": vocab_size - 1, **layers},
        geometry_encoder_config={"hidden_size": width, "num_layers": 1, **layers},
        detr_encoder_config={"hidden_size": width, "num_layers": 1, **layers},
        detr_decoder_config={"hidden_size": width, "num_layers": 2, "num_queries": 12, **layers},
        mask_decoder_config={"hidden_size": width, "num_attention_heads": 2},
    )


def random_sam3(config, seed: int = 0, model_class: str = "Sam3Model"):
    """Sam3Model (or model_class, e.g. Sam3LiteTextModel) with weights that make its answers vary: the
    default init leaves norms constant and gives every query nearly the same box and score."""
    import transformers

    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(config).eval()
    spread = ("reference_points", "query_embed", "box_head", "query_proj", "text_proj", "presence_head",
              "mask_embedder", "instance_projection")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.numel() > 1 and bool((parameter == parameter.flatten()[0]).all()):
                parameter.add_(0.1 * torch.randn_like(parameter))
            if any(part in name for part in spread):
                parameter.normal_(0, 0.3)
    return model


def save_tiny_sam3(folder: Path, config=tiny_sam3_config, model_class: str = "Sam3Model") -> Path:
    """A tiny random model_class of config(vocab_size) and its Sam3Processor saved in folder."""
    tokenizer = byte_level_clip_tokenizer(TEXT_TOKENS)
    random_sam3(config(len(tokenizer)), model_class=model_class).save_pretrained(folder)
    sam3_processor(tokenizer, IMAGE_SIZE).save_pretrained(folder)
    return folder


def sam3_processor(tokenizer, image_size: int):
    from transformers import Sam3ImageProcessor, Sam3Processor

    return Sam3Processor(image_processor=Sam3ImageProcessor(size={"height": image_size, "width": image_size}),
                         tokenizer=tokenizer)


@pytest.fixture(scope="module")
def sam3_dir(tmp_path_factory) -> Path:
    return save_tiny_sam3(tmp_path_factory.mktemp("sam3"))


@pytest.fixture(scope="module")
def direct(sam3_dir):
    """Sam3Model and Sam3Processor as transformers' documentation loads them."""
    from transformers import Sam3Model, Sam3Processor

    return Sam3Model.from_pretrained(sam3_dir).eval(), Sam3Processor.from_pretrained(sam3_dir)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [np.asarray(Image.open(ASSETS / name).convert("RGB")) for name in ("coffee.jpg", "chelsea.jpg")]


@pytest.fixture(scope="module")
def threshold(direct, images) -> float:
    """A score threshold some but not all of the tiny model's instances pass: the midpoint of the widest
    gap between neighbouring scores in the middle half, so float rounding cannot move a score across it."""
    scores = np.sort(np.concatenate([
        query_scores(direct, image, name) for image, names in zip(images, CLASSES) for name in names]))
    middle = np.arange(len(scores) // 4, 3 * len(scores) // 4)
    widest = middle[np.argmax(scores[middle + 1] - scores[middle])]
    assert scores[widest + 1] - scores[widest] > 1e-4, "the tiny model's scores leave no clear gap"
    return float(scores[widest] + scores[widest + 1]) / 2


def query_scores(direct, image: np.ndarray, name: str) -> np.ndarray:
    """Every query's score for one class: sigmoid(detection) x sigmoid(presence), from the model directly."""
    model, processor = direct
    with torch.no_grad():
        outputs = model(**processor(images=Image.fromarray(image), text=name, return_tensors="pt"))
    return (outputs.pred_logits.sigmoid() * outputs.presence_logits.sigmoid())[0].numpy()


def reference(direct, image: np.ndarray, classes: list[str], threshold: float, nms: float | None = None):
    """transformers called the documented way for each class alone; the instances of all classes joined
    as the wrapper promises: boxes clipped to the image, sorted by score, class-wise NMS on request.
    Returns (boxes, scores, class_ids, masks) as numpy arrays."""
    from torchvision.ops import batched_nms

    model, processor = direct
    boxes, scores, class_ids, masks = [], [], [], []
    for class_id, name in enumerate(classes):
        inputs = processor(images=Image.fromarray(image), text=name, return_tensors="pt")
        with torch.no_grad():
            outputs = model(**inputs)
        found = processor.post_process_instance_segmentation(
            outputs, threshold=threshold, mask_threshold=0.5, target_sizes=inputs["original_sizes"].tolist())[0]
        if len(found["scores"]):
            boxes.append(found["boxes"])
            scores.append(found["scores"])
            class_ids.append(torch.full((len(found["scores"]),), class_id))
            masks.append(found["masks"].bool())
    height, width = image.shape[:2]
    boxes, scores, class_ids, masks = (torch.cat(parts) for parts in (boxes, scores, class_ids, masks))
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    order = torch.tensor(sorted(range(len(scores)), key=lambda index: -float(scores[index])))
    if nms is not None:
        kept = batched_nms(boxes[order], scores[order], class_ids[order], nms)
        order = order[kept.sort().values]
    return boxes[order].numpy(), scores[order].numpy(), class_ids[order].numpy(), masks[order].numpy()


def assert_same(result, expected, classes: list[str]) -> None:
    """Within float rounding of batching (1e-5), masks to the pixel but for 1 in 100,000."""
    boxes, scores, class_ids, masks = expected
    detections = result
    assert detections.classes == tuple(classes) and detections.labels == [classes[i] for i in class_ids]
    assert np.array_equal(detections.class_ids, class_ids)
    np.testing.assert_allclose(detections.box_scores, scores, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(detections.mask_scores, detections.box_scores)
    np.testing.assert_allclose(detections.xyxy, boxes, rtol=0, atol=1e-4)
    assert result.masks.dtype == bool and result.masks.shape == masks.shape
    assert (result.masks != masks).mean() <= 1e-5


def test_segments_equal_transformers_called_directly_class_by_class(sam3_dir, direct, images, threshold):
    segmenter = Sam3TextSegmenter(sam3_dir, device="cpu", dtype="float32")
    assert isinstance(segmenter, TextSegmenter) and segmenter.name == str(sam3_dir)
    assert segmenter.parameter_count() == sum(p.numel() for p in direct[0].parameters())
    results = segmenter.segment_text(images, CLASSES, box_threshold=threshold)
    total = sum(len(query_scores(direct, image, name)) for image, names in zip(images, CLASSES) for name in names)
    assert 0 < sum(len(result) for result in results) < total, "the threshold keeps some, not all"
    for result, image, classes in zip(results, images, CLASSES):
        assert_same(result, reference(direct, image, classes, threshold), classes)
        assert result.masks.shape[1:] == image.shape[:2]
        assert np.all(np.diff(result.box_scores) <= 0), "sorted by score"
        boxes = result.xyxy
        height, width = image.shape[:2]
        assert np.all(boxes >= 0) and np.all(boxes[:, 0::2] <= width) and np.all(boxes[:, 1::2] <= height)


def test_classes_batched_into_one_forward_equal_one_class_per_forward(sam3_dir, images, threshold):
    batched = Sam3TextSegmenter(sam3_dir, device="cpu", dtype="float32", class_batch_size=3)
    one_by_one = Sam3TextSegmenter(sam3_dir, device="cpu", dtype="float32", class_batch_size=1)
    classes = [["cup", "saucer", "spoon", "table"], ["cat"]]  # batches of 3 then 1, and a single class
    for together, alone, names in zip(batched.segment_text(images, classes, threshold),
                                      one_by_one.segment_text(images, classes, threshold), classes):
        expected = (alone.xyxy, alone.box_scores, alone.class_ids, alone.masks)
        assert len(alone) > 0
        assert_same(together, expected, names)


def test_class_wise_nms_drops_same_class_overlaps_only(sam3_dir, direct, images):
    from torchvision.ops import box_iou

    segmenter = Sam3TextSegmenter(sam3_dir, device="cpu", dtype="float32")
    image, classes = images[0], CLASSES[0]
    everything = segmenter.segment_text([image], [classes], box_threshold=0.0)[0]
    same_class = torch.from_numpy(everything.class_ids[:, None] == everything.class_ids[None, :])
    overlaps = box_iou(torch.from_numpy(everything.xyxy), torch.from_numpy(everything.xyxy)).fill_diagonal_(0)
    assert overlaps[same_class].max() > 0.1, "the tiny model gives boxes of one class that overlap"
    iou = 0.9 * float(overlaps[same_class].max())  # below the largest same-class overlap: something goes
    suppressed = segmenter.segment_text([image], [classes], box_threshold=0.0, nms_iou_threshold=iou)[0]
    assert_same(suppressed, reference(direct, image, classes, 0.0, nms=iou), classes)
    assert 0 < len(suppressed) < len(everything), "overlapping boxes were dropped"
    kept = suppressed
    overlaps = box_iou(torch.from_numpy(kept.xyxy), torch.from_numpy(kept.xyxy)).fill_diagonal_(0)
    same_class = torch.from_numpy(kept.class_ids[:, None] == kept.class_ids[None, :])
    assert not bool((overlaps[same_class] > iou).any()), "no two kept boxes of one class overlap more than the IoU"
    assert len(set(kept.class_ids.tolist())) > 1


def test_bfloat16_runs_in_bf16_and_stays_close_to_float32(sam3_dir, images, threshold):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bf16 is emulated (slow) on some CPUs
        segmenter = Sam3TextSegmenter(sam3_dir, device="cpu", dtype="bfloat16")
    assert segmenter.model.detr_decoder.query_embed.weight.dtype == torch.bfloat16
    rotary = segmenter.model.vision_encoder.backbone.layers[0].rotary_emb.inv_freq
    assert rotary.dtype == torch.float32, "loading in bf16 keeps the rotary position tables in float32"
    ours = Sam3TextSegmenter(sam3_dir, device="cpu", dtype="float32").segment_text(images, CLASSES, threshold)
    for low, full in zip(segmenter.segment_text(images, CLASSES, threshold), ours):
        assert low.box_scores.dtype == np.float32 and low.xyxy.dtype == np.float32
        assert np.isfinite(low.box_scores).all() and np.isfinite(low.xyxy).all()
        assert abs(len(low) - len(full)) <= max(2, len(full) // 4)
        longer_side = max(low.masks.shape[1:])
        for box, score, class_id in zip(low.xyxy, low.box_scores, low.class_ids):
            same = full.class_ids == class_id  # each bf16 instance has an fp32 twin of its class
            if not same.any():
                continue
            errors = np.abs(full.xyxy[same] - box).max(axis=1)
            assert errors.min() <= 0.05 * longer_side
            assert abs(full.box_scores[same][errors.argmin()] - score) <= 0.05


def test_a_model_saved_as_sam3_video_loads_as_the_image_model(sam3_dir, images, threshold, tmp_path):
    """facebook/sam3 ships one checkpoint for image and video: a sam3_video config whose detector is the
    image model (its weights under detector_model.)."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, Sam3VideoConfig

    folder = tmp_path / "sam3_video"
    shutil.copytree(sam3_dir, folder)
    Sam3VideoConfig(detector_config=AutoConfig.from_pretrained(sam3_dir).to_dict()).save_pretrained(folder)
    weights = load_file(sam3_dir / "model.safetensors")
    save_file({f"detector_model.{name}": tensor for name, tensor in weights.items()}, folder / "model.safetensors",
              metadata={"format": "pt"})

    def segments(path: Path):
        segmenter = Sam3TextSegmenter(path, device="cpu", dtype="float32")
        return segmenter.segment_text(images[:1], CLASSES[:1], threshold)[0]

    video, image = segments(folder), segments(sam3_dir)
    assert len(image) > 0
    assert_same(video, (image.xyxy, image.box_scores, image.class_ids, image.masks), CLASSES[0])


def test_no_class_or_nothing_above_the_threshold_is_an_empty_result(sam3_dir, images):
    segmenter = Sam3TextSegmenter(sam3_dir, device="cpu", dtype="float32")
    asked = [[], ["cup"]]
    for result, image, classes in zip(segmenter.segment_text(images, asked, box_threshold=1.0), images, asked):
        assert len(result) == 0 and result.classes == tuple(classes)
        assert result.masks.shape == (0, *image.shape[:2]) and result.masks.dtype == bool
        assert result.xyxy.shape == (0, 4)
    assert segmenter.segment_text([], []) == []


def test_bad_classes_and_options_are_refused_before_the_model_runs(sam3_dir, images):
    segmenter = Sam3TextSegmenter(sam3_dir, device="cpu", dtype="float32")
    with pytest.raises(InvalidPromptError, match="one list of class names per image"):
        segmenter.segment_text(images, [["cup"]])
    with pytest.raises(InvalidPromptError, match="parse_classes"):
        segmenter.segment_text(images[:1], ["cup, saucer"])
    with pytest.raises(InvalidPromptError, match="non-empty"):
        segmenter.segment_text(images[:1], [["cup", " "]])
    with pytest.raises(InvalidPromptError, match="tokens, more than SAM 3's text encoder takes.*shorten"):
        segmenter.segment_text(images[:1], [["a cup of coffee on a saucer with a spoon"]])  # one token a letter here
    for name, value in (("box_threshold", 1.5), ("nms_iou_threshold", -0.1)):
        with pytest.raises(InvalidOptionError, match=name):
            segmenter.segment_text(images[:1], [["cup"]], **{name: value})
    with pytest.raises(InvalidImageError):
        segmenter.segment_text([images[0], np.zeros((4, 4, 5), np.uint8)], [["cup"], ["cup"]])
    with pytest.raises(InvalidOptionError, match="class_batch_size"):
        Sam3TextSegmenter(sam3_dir, device="cpu", class_batch_size=0)


def test_folders_that_hold_no_sam3_are_clear_errors(sam3_dir, tmp_path):
    from transformers import SamConfig

    SamConfig().save_pretrained(tmp_path / "sam")
    with pytest.raises(ModelLoadError, match="is a sam model, not SAM 3"):
        Sam3TextSegmenter(tmp_path / "sam", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="has no config.json"):
        Sam3TextSegmenter(tmp_path / "empty", device="cpu")
    with pytest.raises(ModelLoadError, match="not a local folder"):
        Sam3TextSegmenter(tmp_path / "missing", device="cpu")


class RunsCode:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_weights_that_would_run_code_are_refused(sam3_dir, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(sam3_dir, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"weights": RunsCode(str(tmp_path / "code-ran"))}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="could run code.*safetensors"):
        Sam3TextSegmenter(folder, device="cpu")
    assert not (tmp_path / "code-ran").exists()


@pytest.mark.parametrize("status", [401, 403], ids=["no token", "licence not accepted"])
def test_a_gated_repo_says_to_accept_the_licence_and_log_in(monkeypatch, status):
    """The hub answers a gated repo's files with 401 (no token) or 403 (licence not accepted), which
    huggingface_hub raises as GatedRepoError; here it is raised where transformers asks the hub for a
    file, so transformers' own wrapping of it (an OSError) is what the segmenter sees."""
    from huggingface_hub.errors import GatedRepoError
    from transformers.utils import hub

    class Answer:  # what the error reads of the hub's HTTP response
        status_code, headers, request = status, {}, None

    def refused(repo_id, filename="config.json", **_):
        raise GatedRepoError(f"{status} Client Error.\n\nCannot access gated repo for url "
                             f"https://huggingface.co/{repo_id}/resolve/main/{filename}.", response=Answer())

    monkeypatch.setattr(hub, "hf_hub_download", refused)
    monkeypatch.setattr(hub, "snapshot_download", refused)
    with pytest.raises(ModelLoadError) as raised:
        Sam3TextSegmenter("facebook/sam3", device="cpu")
    message = str(raised.value)
    assert "gated" in message and "Accept the licence at https://huggingface.co/facebook/sam3" in message
    assert "`hf auth login`" in message and "HF_TOKEN" in message


def test_langsam_on_sam3_runs_no_detector_and_names_only_your_classes(sam3_dir, direct, images, threshold, tmp_path):
    from lang_sam import LangSAM

    never = tmp_path / "no-detector-here"  # a detector that would fail to load: SAM 3 must not load one
    model = LangSAM(sam_checkpoint=sam3_dir, detector=never, device="cpu", dtype="float32")
    assert model.segments_text
    result = model.predict(images[0], "cup, saucer, spoon", box_threshold=threshold)
    expected = Sam3TextSegmenter(sam3_dir, device="cpu", dtype="float32").segment_text(
        [images[0]], [CLASSES[0]], box_threshold=threshold)[0]
    assert result.classes == CLASSES[0] and set(result.phrases) <= set(CLASSES[0])
    assert result.num_detections == len(expected) > 0
    assert np.array_equal(result.masks, expected.masks) and np.allclose(result.boxes, expected.xyxy)
    assert model.predict(images[0], "cup, saucer, spoon", box_threshold=threshold, max_detections=1).num_detections == 1
    both = model.predict(images, ["cup, saucer, spoon", "cat, sofa"], box_threshold=threshold)
    assert [r.classes for r in both] == CLASSES and np.array_equal(both[0].masks, result.masks)
    with pytest.raises(InvalidPromptError, match="segments text prompts"):
        model.predict(images[0], points=[[10, 10]])
    with pytest.raises(InvalidOptionError, match="not a SAM v1 model"):
        model.sam
    assert "parameters" in model.describe() and "+" not in model.describe(), "no detector in what runs"
    with pytest.raises(ModelLoadError):  # asked for, the detector loads only now (and this one is missing)
        model.detector


def test_lang_sam_predict_runs_sam3_from_the_command_line(sam3_dir, images, threshold, tmp_path):
    import json

    from lang_sam.interfaces.cli import main

    photo = tmp_path / "coffee.png"
    Image.fromarray(images[0]).save(photo)
    out = tmp_path / "out"
    code = main(["predict", str(photo), "--prompt", "cup, saucer, spoon", "--sam-checkpoint", str(sam3_dir), "--out", str(out),
                 "--detector", str(tmp_path / "never-loaded"), "--device", "cpu", "--dtype", "float32",
                 "--box-threshold", str(threshold)])
    assert code == 0
    written = json.loads((out / "coffee.json").read_text())
    expected = Sam3TextSegmenter(sam3_dir, device="cpu", dtype="float32").segment_text([images[0]], [CLASSES[0]], box_threshold=threshold)[0]
    assert [d["label"] for d in written["detections"]] == expected.labels and (out / "coffee.png").is_file()


def test_segment_everything_on_sam3_without_its_tracker_is_refused_naming_the_models_that_can(sam3_dir, images, tmp_path, capsys):
    from lang_sam.interfaces.cli import main
    from lang_sam.segmenter import SamAutomaticMaskGenerator

    with pytest.raises(InvalidOptionError, match="cannot segment everything: it takes no point prompts.*SAM v1, SAM 2.1, SAM-HQ, EdgeTAM and SAM 3 with its tracker"):
        SamAutomaticMaskGenerator(Sam3TextSegmenter(sam3_dir, device="cpu", dtype="float32"))
    photo = tmp_path / "coffee.png"
    Image.fromarray(images[0]).save(photo)
    code = main(["everything", str(photo), "--sam-checkpoint", str(sam3_dir), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--dtype", "float32"])
    assert code == 2 and "runs on SAM v1, SAM 2.1, SAM-HQ, EdgeTAM and SAM 3 with its tracker" in capsys.readouterr().err
    assert not (tmp_path / "out" / "coffee.json").exists()
