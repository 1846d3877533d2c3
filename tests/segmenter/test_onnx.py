"""SAM in ONNX (onnxruntime, CPU): the exported decoder equals lang-sam's PyTorch decoder and
segment-anything's own SamOnnxModel on identical weights; the encoder equals PyTorch's."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from segment_anything.utils.onnx import SamOnnxModel as ReferenceOnnxModel

from lang_sam.interfaces.cli import main
from lang_sam.segmenter import SamPredictor, processing
from tests.conftest import SMALL_ARCHITECTURE, reference_sam, shared_image


@pytest.fixture(scope="module")
def exported(tmp_path_factory, sam_files):
    """decoder.onnx, decoder_quantized.onnx and encoder.onnx of the first tiny SAM file, by the CLI."""
    out = tmp_path_factory.mktemp("onnx")
    assert main(["export-onnx", "--checkpoint", str(sam_files[0]), "--out", str(out), "--quantize", "--encoder"]) == 0
    return out


def session(path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def prompts(image_size: tuple[int, int]) -> dict[str, dict]:
    """Meta's web-demo inputs in the 1024 frame: a click (with the padding point), two clicks and a
    box, a click with a previous mask."""
    height, width = image_size

    def frame(points: list) -> np.ndarray:
        return processing.transform_coords(np.array(points, float), image_size)[None].astype(np.float32)

    return {
        "click": dict(point_coords=frame([[0.4 * width, 0.5 * height], [0, 0]]), point_labels=np.array([[1, -1]], np.float32)),
        "clicks and box": dict(point_coords=frame([[0.5 * width, 0.5 * height], [0.2 * width, 0.8 * height],
                                                   [0.1 * width, 0.1 * height], [0.9 * width, 0.9 * height]]),
                               point_labels=np.array([[1, 0, 2, 3]], np.float32)),
    }


def test_the_decoder_equals_pytorch_and_segment_anythings_model(exported, sam_files):
    from lang_sam.segmenter import build_sam

    image = shared_image("groceries.jpg")
    ours = build_sam(checkpoint=sam_files[0])
    predictor = SamPredictor(ours)
    predictor.set_image(image)
    embedding = predictor.features.numpy()
    reference = ReferenceOnnxModel(reference_sam(SMALL_ARCHITECTURE, torch.load(sam_files[0], weights_only=True)), return_single_mask=True)
    decoder = session(exported / "decoder.onnx")

    def check(feed: dict, name: str) -> np.ndarray:
        masks, scores, low_res = decoder.run(None, feed)
        with torch.no_grad():
            expected = [t.numpy() for t in reference(*(torch.from_numpy(v) for v in feed.values()))]
        assert masks.shape == (1, 1, *image.shape[:2]) and low_res.shape == (1, 1, 256, 256)
        np.testing.assert_allclose(low_res, expected[2], atol=1e-4, rtol=0, err_msg=name)
        np.testing.assert_allclose(scores, expected[1], atol=1e-4, rtol=0, err_msg=name)
        np.testing.assert_allclose(masks, expected[0], atol=1e-3, rtol=0, err_msg=name)
        assert ((masks > 0) == (expected[0] > 0)).mean() >= 0.999
        return low_res

    for name, prompt in prompts(image.shape[:2]).items():
        feed = {"image_embeddings": embedding, **prompt, "mask_input": np.zeros((1, 1, 256, 256), np.float32),
                "has_mask_input": np.array([0], np.float32), "orig_im_size": np.array(image.shape[:2], np.float32)}
        low_res = check(feed, name)
        # refine: the previous answer's low-res logits as the mask input
        check({**feed, "mask_input": low_res, "has_mask_input": np.array([1], np.float32)}, f"{name}, refined")
    # several points and a box use the single-mask token: the PyTorch predictor's multimask_output=False
    prompt = prompts(image.shape[:2])["clicks and box"]
    feed = {"image_embeddings": embedding, **prompt, "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.array([0], np.float32), "orig_im_size": np.array(image.shape[:2], np.float32)}
    masks, scores, low_res = decoder.run(None, feed)
    height, width = image.shape[:2]
    torch_masks, torch_scores, torch_low_res = predictor.predict(
        point_coords=np.array([[0.5 * width, 0.5 * height], [0.2 * width, 0.8 * height]]), point_labels=np.array([1, 0]),
        box=np.array([0.1 * width, 0.1 * height, 0.9 * width, 0.9 * height]), multimask_output=False)
    np.testing.assert_allclose(low_res[0], torch_low_res, atol=1e-4, rtol=0)
    np.testing.assert_allclose(scores[0], torch_scores, atol=1e-4, rtol=0)
    assert ((masks[0] > 0) == torch_masks).mean() >= 0.999


def test_the_encoder_and_the_int8_decoder(exported, sam_files):
    from lang_sam.segmenter import build_sam

    image = shared_image("dogs.jpg")
    predictor = SamPredictor(build_sam(checkpoint=sam_files[0]))
    predictor.set_image(image)
    resized = processing.resize_image(image)
    embedding = session(exported / "encoder.onnx").run(None, {"input_image": resized})[0]
    np.testing.assert_allclose(embedding, predictor.features.numpy(), atol=1e-3, rtol=0)
    feed = {"image_embeddings": embedding, **prompts(image.shape[:2])["click"], "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.array([0], np.float32), "orig_im_size": np.array(image.shape[:2], np.float32)}
    full = session(exported / "decoder.onnx").run(None, feed)
    quantized = session(exported / "decoder_quantized.onnx").run(None, feed)
    assert (exported / "decoder_quantized.onnx").stat().st_size < 0.5 * (exported / "decoder.onnx").stat().st_size
    assert ((quantized[0] > 0) == (full[0] > 0)).mean() >= 0.95 and float(np.abs(quantized[1] - full[1]).max()) < 0.05


def test_export_errors_are_clear_and_leave_nothing(sam_files, tmp_path, capsys):
    assert main(["export-onnx", "--sam-type", "vit_q", "--out", str(tmp_path / "a")]) == 2
    assert "Unknown SAM type 'vit_q'" in capsys.readouterr().err
    broken = tmp_path / "broken.pth"
    broken.write_bytes(sam_files[0].read_bytes()[:5000])
    assert main(["export-onnx", "--checkpoint", str(broken), "--out", str(tmp_path / "b")]) == 2
    assert "broken.pth" in capsys.readouterr().err and not (tmp_path / "b").exists()
    (tmp_path / "file").write_text("not a folder")
    assert main(["export-onnx", "--checkpoint", str(sam_files[0]), "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root writes anywhere
            assert main(["export-onnx", "--checkpoint", str(sam_files[0]), "--out", str(locked)]) == 2
            assert "cannot be written" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)
    assert [p.name for p in locked.iterdir()] == []


@pytest.mark.parametrize("opset", ["0", "13", "24"])
def test_an_opset_sam_cannot_be_exported_to_is_refused_before_loading(opset, sam_files, tmp_path, capsys, monkeypatch):
    loads = []
    monkeypatch.setattr("lang_sam.segmenter.build.load_sam", lambda *args, **kwargs: loads.append(args))
    assert main(["export-onnx", "--checkpoint", str(sam_files[0]), "--out", str(tmp_path / "out"), "--opset", opset]) == 2
    error = capsys.readouterr().err
    assert "opsets 14 to 23" in error and "Traceback" not in error and loads == [] and not (tmp_path / "out").exists()


def test_export_reads_the_settings_environment_like_every_command(sam_files, tmp_path, monkeypatch, capsys):
    """No --checkpoint: $LANG_SAM_SAM_CHECKPOINT names the SAM, as for predict, label or serve."""
    import onnx

    monkeypatch.setenv("LANG_SAM_SAM_CHECKPOINT", str(sam_files[0]))
    assert main(["export-onnx", "--out", str(tmp_path / "out")]) == 0
    assert f"(SAM {sam_files[0].stem})" in capsys.readouterr().err
    graph = onnx.load(tmp_path / "out" / "decoder.onnx").graph
    embedding = next(entry for entry in graph.input if entry.name == "image_embeddings")
    assert [d.dim_value for d in embedding.type.tensor_type.shape.dim] == [1, 256, 64, 64]
