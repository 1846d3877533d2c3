"""Mask2Former and OneFormer through lang_sam.families.universal: tiny random models saved with
save_pretrained, loaded through the public path, checked against transformers' model and
post-processing called directly; the vote that names masks against a count made here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lang_sam.errors import InvalidOptionError, ModelLoadError
from lang_sam.families.universal import UniversalSegmenter, vote_labels
from tests.conftest import shared_image
from tests.families.conftest import LABELS, save_tiny_mask2former


@pytest.fixture(scope="module")
def mask2former_dir(tmp_path_factory):
    return save_tiny_mask2former(tmp_path_factory.mktemp("mask2former"))


@pytest.fixture(scope="module")
def oneformer_dir(tmp_path_factory):
    """A tiny OneFormer with a CLIP tokenizer over the 512 byte-level symbols (no merges) and the
    class-info file its image processor reads."""
    import json

    from transformers import CLIPTokenizer, OneFormerConfig, OneFormerForUniversalSegmentation, OneFormerImageProcessor
    from transformers import OneFormerProcessor, SwinConfig
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder = tmp_path_factory.mktemp("oneformer")
    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab.update({f"{symbol}</w>": index + len(symbols) for index, symbol in enumerate(symbols)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    (folder / "classes.json").write_text(json.dumps({str(i): {"name": name, "isthing": int(i >= 2)} for i, name in enumerate(LABELS)}))
    image_processor = OneFormerImageProcessor(repo_path=str(folder), class_info_file="classes.json", num_text=4,
                                              size={"shortest_edge": 128, "longest_edge": 256})
    processor = OneFormerProcessor(image_processor=image_processor, tokenizer=CLIPTokenizer(vocab=vocab, merges=[]),
                                   max_seq_length=16, task_seq_length=16)
    backbone = SwinConfig(image_size=224, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                          window_size=7, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = OneFormerConfig(
        backbone_config=backbone, hidden_dim=32, conv_dim=32, mask_dim=32, encoder_layers=1, decoder_layers=2,
        num_attention_heads=2, dim_feedforward=64, encoder_feedforward_dim=64, num_queries=10, text_encoder_width=32,
        text_encoder_num_layers=1, text_encoder_context_length=16, text_encoder_proj_layers=1, text_encoder_n_ctx=4,
        text_encoder_vocab_size=len(vocab), max_seq_len=16, task_seq_len=16, num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id={name: index for index, name in enumerate(LABELS)},
    )
    torch.manual_seed(2)
    model = OneFormerForUniversalSegmentation(config).eval()
    with torch.no_grad():  # as for Mask2Former: heads that make the semantic map vary
        for name, parameter in model.named_parameters():
            if "class_embed" in name or "mask_embed" in name or "queries_embedder" in name:
                parameter.normal_(0, 1.0)
    model.save_pretrained(folder / "model")
    processor.save_pretrained(folder / "model")
    return folder / "model"


def reference_outputs(folder, image: np.ndarray, task: str = "semantic"):
    """transformers' own processor and model on image: (processor, outputs)."""
    from PIL import Image
    from transformers import AutoModelForUniversalSegmentation, AutoProcessor

    model = AutoModelForUniversalSegmentation.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    extra = {"task_inputs": [task]} if model.config.model_type == "oneformer" else {}
    with torch.no_grad():
        outputs = model(**processor(images=Image.fromarray(image), return_tensors="pt", **extra))
    return processor, outputs


@pytest.mark.parametrize("family", ["mask2former", "oneformer"])
def test_semantic_map_and_segments_equal_transformers_called_directly(family, request):
    folder = request.getfixturevalue(f"{family}_dir")
    image = shared_image("groceries.jpg")
    segmenter = UniversalSegmenter(str(folder), device="cpu", dtype="float32")
    assert segmenter.labels == LABELS
    processor, outputs = reference_outputs(folder, image)
    expected = processor.post_process_semantic_segmentation(outputs, target_sizes=[image.shape[:2]])[0].numpy()
    class_map = segmenter.semantic_map(image)
    assert np.array_equal(class_map, expected) and len(np.unique(class_map)) >= 2
    semantic = segmenter.semantic(image)
    present, counts = np.unique(expected, return_counts=True)
    assert sorted(semantic.labels) == sorted(LABELS[i] for i in present)
    assert semantic.mask_scores.sum() == pytest.approx(1.0) and np.all(np.diff(semantic.mask_scores) <= 0)
    for mask, name in zip(semantic.masks, semantic.labels):
        assert np.array_equal(mask, expected == LABELS.index(name))
    processor, outputs = reference_outputs(folder, image, "panoptic")
    panoptic = processor.post_process_panoptic_segmentation(outputs, target_sizes=[image.shape[:2]], threshold=0.1)[0]
    ours = segmenter.panoptic(image, threshold=0.1)
    assert len(ours) == len(panoptic["segments_info"]) > 0
    for mask, name, score, info in zip(ours.masks, ours.labels, ours.mask_scores, panoptic["segments_info"]):
        assert np.array_equal(mask, panoptic["segmentation"].numpy() == info["id"])
        assert name == LABELS[info["label_id"]] and score == pytest.approx(info["score"], abs=1e-6)
    instances = segmenter.instances(image, threshold=0.1)
    assert instances.masks.shape[1:] == image.shape[:2] and set(instances.labels) <= set(LABELS)


def test_the_vote_names_each_mask_by_its_majority_class():
    rng = np.random.default_rng(0)
    class_map = rng.integers(0, 4, (30, 40))
    class_map[:15, :20] = 2
    masks = np.zeros((3, 30, 40), bool)
    masks[0, :10, :10] = True  # all class 2
    masks[1] = rng.random((30, 40)) < 0.3
    masks[1, :15, :20] = True  # mostly class 2, then noise
    masks[2, 20:, 30:] = True
    winners, shares = vote_labels(masks, class_map)
    for mask, winner, share in zip(masks, winners, shares):
        counts = np.array([(class_map[mask] == c).sum() for c in range(4)])
        assert winner == counts.argmax() and share == pytest.approx(counts.max() / mask.sum())
    assert winners[0] == 2 and shares[0] == 1.0
    assert vote_labels(np.zeros((0, 30, 40), bool), class_map)[0].shape == (0,)


def test_bad_folders_and_options_are_clear_errors(mask2former_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="not a local folder"):
        UniversalSegmenter(str(tmp_path / "missing"), device="cpu")
    segmenter = UniversalSegmenter(str(mask2former_dir), device="cpu", dtype="float32")
    with pytest.raises(InvalidOptionError, match="threshold"):
        segmenter.panoptic(shared_image("groceries.jpg"), threshold=2)


def test_lang_sam_everything_names_its_masks_with_the_semantic_model(mask2former_dir, sam_files, tmp_path):
    import json

    from PIL import Image
    from pycocotools import mask as mask_utils

    from lang_sam.interfaces.cli import main
    from tests.detector.test_grounding_dino import ASSETS

    out = tmp_path / "out"
    code = main(["everything", str(ASSETS / "coffee.jpg"), "--out", str(out), "--sam-checkpoint", str(sam_files[0]),
                 "--device", "cpu", "--points-per-side", "3", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
                 "--min-mask-region-area", "50", "--semantic", str(mask2former_dir)])
    assert code == 0
    payload = json.loads((out / "coffee.json").read_text())
    image = np.asarray(Image.open(ASSETS / "coffee.jpg").convert("RGB"))
    processor, outputs = reference_outputs(mask2former_dir, image)
    class_map = processor.post_process_semantic_segmentation(outputs, target_sizes=[image.shape[:2]])[0].numpy()
    assert payload["masks"]
    for written in payload["masks"]:
        rle = {"size": written["segmentation"]["size"], "counts": written["segmentation"]["counts"].encode()}
        pixels = class_map[mask_utils.decode(rle).astype(bool)]
        counts = np.bincount(pixels, minlength=len(LABELS))
        assert written["label"] == LABELS[counts.argmax()]
        assert written["label_share"] == pytest.approx(counts.max() / pixels.size, abs=1e-6)


def test_label_everything_names_masks_as_categories_and_resumes(mask2former_dir, sam_files, tmp_path):
    import json
    import shutil

    from PIL import Image
    from pycocotools import mask as mask_utils

    from lang_sam.interfaces.cli import main
    from lang_sam.segmenter import SamAutomaticMaskGenerator, build_sam
    from tests.detector.test_grounding_dino import ASSETS

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("coffee.jpg", "chelsea.jpg"):
        shutil.copy(ASSETS / name, photos / name)
    out = tmp_path / "labelled"
    options = ["--points-per-side", "2", "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--chunk-size", "1"]
    command = ["label", str(photos), "--everything", "--semantic", str(mask2former_dir), "--out", str(out),
               "--sam-checkpoint", str(sam_files[0]), "--device", "cpu", *options]
    assert main(command) == 0
    dataset = json.loads((out / "annotations.json").read_text())
    assert [c["name"] for c in dataset["categories"]] == LABELS
    generator = SamAutomaticMaskGenerator(build_sam(checkpoint=sam_files[0]), points_per_side=2, pred_iou_thresh=0.0,
                                          stability_score_thresh=0.0)
    for image in dataset["images"]:
        pixels = np.asarray(Image.open(photos / image["file_name"]).convert("RGB"))
        expected = sorted(generator.generate(pixels), key=lambda r: -r["area"])
        processor, outputs = reference_outputs(mask2former_dir, pixels)
        class_map = processor.post_process_semantic_segmentation(outputs, target_sizes=[pixels.shape[:2]])[0].numpy()
        annotations = [a for a in dataset["annotations"] if a["image_id"] == image["id"]]
        assert len(annotations) == len(expected) > 0
        for annotation, record in zip(annotations, expected):
            mask = mask_utils.decode({**annotation["segmentation"], "counts": annotation["segmentation"]["counts"].encode()})
            assert np.array_equal(mask.astype(bool), record["segmentation"])
            assert annotation["category_id"] == np.bincount(class_map[record["segmentation"]], minlength=len(LABELS)).argmax() + 1
            assert annotation["score"] == pytest.approx(record["predicted_iou"], abs=1e-6)
    assert main(command) == 0, "a finished run resumes to the same dataset"
    assert json.loads((out / "annotations.json").read_text()) == dataset
    other = command[:3] + command[5:]  # without --semantic: other settings, refused
    assert main(other) == 2
