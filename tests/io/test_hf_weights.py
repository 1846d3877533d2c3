"""SAM weights in transformers' layout: loaded by build_sam, written by `lang-sam convert`, and proven
to compute what transformers' SamModel and Meta's segment-anything compute on a real photo.

Tolerances (fp32, low-res mask logits and IoU predictions), set by what was measured:
- 2e-5 (issue 17 asks 1e-4): a tiny SAM converted to SamModel against segment-anything (largest
  difference seen 4.0e-7); a random vit_b SamModel as SamConfig() saves it (eps 1e-6 in the two-way
  transformer, where Meta's SAM has 1e-5) against lang-sam's SAM loaded from its folder, which
  reads that eps from config.json (4.2e-6; 2.1e-4 when lang-sam used Meta's 1e-5 instead).
- 2e-6 where one tiny SAM is loaded with several eps: each matches SamModel of the same config
  within 2.3e-7, while 1e-5 and 1e-6 move the logits by 1.7e-5 to 2.3e-5.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from segment_anything import SamPredictor as ReferencePredictor

from lang_sam.errors import CheckpointError
from lang_sam.interfaces.cli import main
from lang_sam.segmenter import SamPredictor, build_sam
from lang_sam.segmenter import processing
from lang_sam.segmenter.build import architecture_of, load_sam, official_sam_name
from lang_sam.segmenter.convert import EpsNotKeptWarning, convert_checkpoint
from lang_sam.segmenter.hf_format import architecture_from_hf_config, hf_to_meta, meta_to_hf
from tests.conftest import SMALL_ARCHITECTURE, random_sam_state_dict, reference_sam

ASSETS = Path(__file__).resolve().parents[2] / "assets"
LOGIT_TOLERANCE = 2e-5
TINY_EPS_TOLERANCE = 2e-6

# In pixels of chelsea.jpg (451 x 300): a click on the cat, a box around it, and the box with a
# foreground and a background click.
PROMPTS = {
    "points": dict(point_coords=[[220.0, 150.0], [300.0, 120.0]], point_labels=[1, 1]),
    "box": dict(box=[90.0, 20.0, 400.0, 290.0]),
    "box_and_points": dict(box=[90.0, 20.0, 400.0, 290.0], point_coords=[[220.0, 150.0], [30.0, 250.0]], point_labels=[1, 0]),
}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(ASSETS / "chelsea.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def meta_checkpoint(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A tiny random SAM in Meta's format (.pth), every tensor random."""
    state_dict = random_sam_state_dict(SMALL_ARCHITECTURE, seed=3)
    path = tmp_path_factory.mktemp("meta") / "tiny_sam.pth"
    torch.save(state_dict, path)
    return path, state_dict


@pytest.fixture(scope="module")
def hf_folder(meta_checkpoint, tmp_path_factory) -> Path:
    """meta_checkpoint converted to a transformers folder by lang-sam convert."""
    folder = tmp_path_factory.mktemp("hf") / "tiny-sam-hf"
    assert main(["convert", str(meta_checkpoint[0]), "--out", str(folder)]) == 0
    return folder


def pixel_values(image: np.ndarray) -> torch.Tensor:
    """SAM's model input, (1, 3, 1024, 1024): resized, normalised and padded as both layouts expect."""
    resized = torch.from_numpy(processing.resize_image(image)).permute(2, 0, 1)[None].float()
    return processing.normalize_and_pad(resized)


@torch.inference_mode()
def sam_model_decode(model, embeddings: torch.Tensor, prompt: dict, original_size: tuple[int, int], multimask: bool):
    """SamModel's low-res logits (M, 256, 256) and IoU predictions (M,) for a prompt in image pixels."""
    inputs = {}
    if "point_coords" in prompt:
        coords = processing.transform_coords(np.array(prompt["point_coords"]), original_size)
        inputs["input_points"] = torch.tensor(coords, dtype=torch.float32)[None, None]
        inputs["input_labels"] = torch.tensor(prompt["point_labels"])[None, None]
    if "box" in prompt:
        box = processing.transform_boxes(np.array(prompt["box"]), original_size)
        inputs["input_boxes"] = torch.tensor(box, dtype=torch.float32)[None]
    outputs = model(image_embeddings=embeddings, multimask_output=multimask, **inputs)
    return outputs.pred_masks[0, 0].numpy(), outputs.iou_scores[0, 0].numpy()


def predictor_decode(predictor, prompt: dict, multimask: bool):
    """A segment-anything style predictor's low-res logits and IoU predictions for the same prompt."""
    arrays = {key: np.array(value) for key, value in prompt.items()}
    _, iou, low_res = predictor.predict(**arrays, multimask_output=multimask, return_logits=True)
    return low_res, iou


def assert_same_decodes(model, embeddings, predictor, image: np.ndarray, tolerance: float) -> None:
    """SamModel's logits and IoU predictions within tolerance of a predictor's for every prompt,
    multimask and not (the differences are printed: pytest -s shows them)."""
    for name, prompt in PROMPTS.items():
        for multimask in (True, False):
            hf_low_res, hf_iou = sam_model_decode(model, embeddings, prompt, image.shape[:2], multimask)
            low_res, iou = predictor_decode(predictor, prompt, multimask)
            assert hf_low_res.shape == low_res.shape == (3 if multimask else 1, 256, 256), name
            difference = max(np.abs(hf_low_res - low_res).max(), np.abs(hf_iou - iou).max())
            print(f"{name}, multimask={multimask}: {difference:.2e}")
            assert difference <= tolerance, f"{name}, multimask={multimask}: {difference:.2e}"
            assert np.abs(low_res).max() > 1000 * tolerance, "logits too small to tell a difference"


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Random weights on every tensor of a transformers SamModel, at scales that keep activations
    sensible (its own init leaves the encoder near zero, which would hide mapping mistakes)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if "positional_embedding" in name:
                parameter.copy_(noise)  # Meta's Gaussian matrix is N(0, 1)
            elif parameter.ndim == 1:
                parameter.add_(0.1 * noise)  # norms stay near 1, biases near 0
            else:
                fan_in = parameter[0].numel()
                parameter.copy_(noise * (0.02 if fan_in > 4096 else 1 / math.sqrt(fan_in)))


def test_converted_meta_checkpoint_is_a_sam_model_equal_to_segment_anything(meta_checkpoint, hf_folder, photo):
    from transformers import SamModel, SamProcessor

    path, state_dict = meta_checkpoint
    assert sorted(p.name for p in hf_folder.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    model, info = SamModel.from_pretrained(hf_folder, output_loading_info=True)
    assert not any(info.values()), f"SamModel did not load every tensor: {info}"
    # Meta's eps, written out: SamModel would otherwise read SamMaskDecoderConfig's default 1e-6.
    assert json.loads((hf_folder / "config.json").read_text())["mask_decoder_config"]["layer_norm_eps"] == 1e-5
    assert model.config.mask_decoder_config.layer_norm_eps == 1e-5
    assert type(SamProcessor.from_pretrained(hf_folder).image_processor).__name__.startswith("SamImageProcessor")
    reference = ReferencePredictor(reference_sam(SMALL_ARCHITECTURE, state_dict))
    reference.set_image(photo)
    with torch.inference_mode():
        embeddings = model.eval().get_image_embeddings(pixel_values(photo))
    torch.testing.assert_close(embeddings, reference.get_image_embedding(), atol=LOGIT_TOLERANCE, rtol=0)
    assert_same_decodes(model, embeddings, reference, photo, LOGIT_TOLERANCE)



@pytest.fixture(scope="module")
def vit_b_hf_folder(tmp_path_factory) -> Path:
    """A random transformers SamModel of the default SamConfig (vit_b), saved with save_pretrained."""
    from transformers import SamConfig, SamModel

    torch.manual_seed(0)
    model = SamModel(SamConfig()).eval()
    randomise(model)
    folder = tmp_path_factory.mktemp("vit-b-hf")
    model.save_pretrained(folder)
    return folder


def test_vit_b_sam_model_folder_loads_into_our_sam_with_equal_outputs(vit_b_hf_folder, photo):
    from transformers import SamModel

    as_saved = SamModel.from_pretrained(vit_b_hf_folder).eval()
    # SamConfig()'s default, saved as is: eps 1e-6 in the two-way transformer (Meta's SAM: 1e-5).
    assert as_saved.config.mask_decoder_config.layer_norm_eps == 1e-6
    sam = build_sam("vit_b", checkpoint=vit_b_hf_folder)  # still the official size, whatever its eps
    assert architecture_of(sam).decoder_layer_norm_eps == 1e-6 and official_sam_name(architecture_of(sam)) == "vit_b"
    predictor = SamPredictor(sam)
    predictor.set_image(photo)
    with torch.inference_mode():
        embeddings = as_saved.get_image_embeddings(pixel_values(photo))
    torch.testing.assert_close(predictor.get_image_embedding(), embeddings, atol=LOGIT_TOLERANCE, rtol=0)
    assert_same_decodes(as_saved, embeddings, predictor, photo, LOGIT_TOLERANCE)


def hf_copy(hf_folder: Path, destination: Path, edit_tensors=None, edit_config=None) -> Path:
    """A copy of a transformers SAM folder, its tensors or config edited."""
    destination.mkdir()
    tensors = load_file(hf_folder / "model.safetensors")
    config = json.loads((hf_folder / "config.json").read_text())
    if edit_tensors:
        edit_tensors(tensors)
    if edit_config:
        edit_config(config)
    save_file(tensors, destination / "model.safetensors", metadata={"format": "pt"})
    (destination / "config.json").write_text(json.dumps(config))
    return destination


def with_eps(hf_folder: Path, destination: Path, eps) -> Path:
    """A copy of a transformers SAM folder whose config.json gives the two-way transformer this eps."""
    return hf_copy(hf_folder, destination, edit_config=lambda config: config["mask_decoder_config"].update(layer_norm_eps=eps))


def test_the_folders_eps_reaches_the_model(hf_folder, photo, tmp_path):
    """The same tiny weights under eps 1e-5, 1e-6 and 1e-3: lang-sam matches SamModel of the same
    config, not SamModel of another eps (1e-3 would show a norm given the eps that SamModel keeps
    at 1e-5, its layer_norm_final_attn, or one left at 1e-5 that it gives the eps)."""
    from transformers import SamModel

    epsilons = (1e-5, 1e-6, 1e-3)
    folders = {eps: with_eps(hf_folder, tmp_path / f"eps-{eps:g}", eps) for eps in epsilons}
    models = {eps: SamModel.from_pretrained(folder).eval() for eps, folder in folders.items()}
    with torch.inference_mode():
        embeddings = models[1e-5].get_image_embeddings(pixel_values(photo))  # the encoders' eps is fixed
    encoded = None
    for eps, folder in folders.items():
        sam = build_sam(checkpoint=folder)
        assert architecture_of(sam).decoder_layer_norm_eps == eps
        predictor = SamPredictor(sam)
        if encoded is None:
            predictor.set_image(photo)
            encoded = predictor.embedding
        predictor.set_embedding(encoded)  # the same encoder weights: encoded once
        assert_same_decodes(models[eps], embeddings, predictor, photo, TINY_EPS_TOLERANCE)
        for other in epsilons:
            if other != eps:
                other_low_res, _ = sam_model_decode(models[other], embeddings, PROMPTS["points"], photo.shape[:2], True)
                low_res, _ = predictor_decode(predictor, PROMPTS["points"], True)
                assert np.abs(other_low_res - low_res).max() > 5 * TINY_EPS_TOLERANCE, (eps, other)


def test_eps_in_config_json(hf_folder):
    config = json.loads((hf_folder / "config.json").read_text())
    assert architecture_from_hf_config(config).decoder_layer_norm_eps == 1e-5
    del config["mask_decoder_config"]["layer_norm_eps"]  # transformers then reads SamMaskDecoderConfig's 1e-6
    assert architecture_from_hf_config(config).decoder_layer_norm_eps == 1e-6
    for bad in (0, -1e-5, "1e-5", None, True, float("nan"), float("inf")):
        config["mask_decoder_config"]["layer_norm_eps"] = bad
        with pytest.raises(CheckpointError, match="layer_norm_eps is .*, not a positive number"):
            architecture_from_hf_config(config)


def test_eps_kept_to_hf_and_announced_to_meta(hf_folder, meta_checkpoint, tmp_path, capsys):
    folder = with_eps(hf_folder, tmp_path / "eps-1e-6", 1e-6)
    again = convert_checkpoint(folder, tmp_path / "again-hf", to="hf")
    assert json.loads((again / "config.json").read_text())["mask_decoder_config"]["layer_norm_eps"] == 1e-6
    meta_file = tmp_path / "from-eps-1e-6.pth"
    with pytest.warns(EpsNotKeptWarning, match=r"layer_norm_eps 1e-06.*loads with Meta's 1e-05"):
        convert_checkpoint(folder, meta_file)
    _, state_dict = meta_checkpoint  # the tensors are still converted unchanged
    loaded = torch.load(meta_file, weights_only=True)
    assert loaded.keys() == state_dict.keys() and all(torch.equal(loaded[name], state_dict[name]) for name in loaded)
    assert main(["convert", str(folder), "--out", str(tmp_path / "cli.pth")]) == 0
    err = capsys.readouterr().err
    assert "lang-sam: wrote" in err and "lang-sam: warning:" in err and "layer_norm_eps 1e-06" in err
    assert main(["convert", str(hf_folder), "--out", str(tmp_path / "meta-eps.pth")]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_official_to_hf_to_official_is_bit_exact(meta_checkpoint, hf_folder, tmp_path, suffix):
    _, state_dict = meta_checkpoint
    back = tmp_path / f"back{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("error", EpsNotKeptWarning)  # the folder says Meta's 1e-5: nothing is lost
        assert convert_checkpoint(hf_folder, back) == back
    loaded = load_file(back) if suffix == ".safetensors" else torch.load(back, weights_only=True)
    assert loaded.keys() == state_dict.keys()
    for name, tensor in state_dict.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name


def test_key_mapping_is_a_bijection_onto_sam_models_names(meta_checkpoint):
    from transformers import SamConfig, SamModel

    _, state_dict = meta_checkpoint
    hf_state_dict, config = meta_to_hf(state_dict, SMALL_ARCHITECTURE)
    expected = SamModel(SamConfig(**config)).state_dict()
    expected.pop("prompt_encoder.shared_embedding.positional_embedding")  # tied to shared_image_embedding's
    assert {name: tensor.shape for name, tensor in hf_state_dict.items()} == {
        name: tensor.shape for name, tensor in expected.items()}
    back = hf_to_meta(hf_state_dict, config)
    assert back.keys() == state_dict.keys() and all(back[name] is state_dict[name] for name in back)


def test_meta_state_dict_as_safetensors_loads(meta_checkpoint, tmp_path):
    _, state_dict = meta_checkpoint
    path = tmp_path / "tiny_sam.safetensors"
    save_file(state_dict, path)
    sam = build_sam(checkpoint=path)
    assert all(torch.equal(tensor, state_dict[name]) for name, tensor in sam.state_dict().items())


def same_weights_in(sam, state_dict: dict[str, torch.Tensor], dtype: torch.dtype) -> bool:
    """Whether sam holds state_dict's weights as build_sam stores them in dtype: the image encoder and
    the mask decoder in dtype, the prompt encoder in float32."""
    def stored(key: str) -> torch.dtype:
        return torch.float32 if key.startswith("prompt_encoder.") else dtype

    loaded = sam.state_dict()
    return loaded.keys() == state_dict.keys() and all(
        tensor.dtype == stored(key) and torch.equal(tensor, state_dict[key].to(stored(key))) for key, tensor in loaded.items()
    )


def test_folder_and_repo_id_load_through_load_sam_and_the_cli(hf_folder, meta_checkpoint, tmp_path, monkeypatch,
                                                               auto_dtype):
    from huggingface_hub import constants

    from lang_sam.datasets.labeling import model_record
    from lang_sam.io.weights import file_sha256
    from lang_sam.settings import Settings

    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny-sam" / "snapshots" / ("0" * 40)
    snapshot.parent.mkdir(parents=True)
    (cache / "models--someone--tiny-sam" / "refs").mkdir()
    (cache / "models--someone--tiny-sam" / "refs" / "main").write_text("0" * 40)
    hf_copy(hf_folder, snapshot)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    _, state_dict = meta_checkpoint
    for checkpoint, name in ((hf_folder, hf_folder.name), ("someone/tiny-sam", "someone/tiny-sam")):
        loaded_name, sam = load_sam(checkpoint=checkpoint)
        assert loaded_name == name
        assert same_weights_in(sam, state_dict, auto_dtype), "load_sam's default dtype is what 'auto' resolves to"
    record = model_record(Settings(sam_checkpoint="someone/tiny-sam", device="cpu"))
    assert record["sam"] == "someone/tiny-sam" and record["sam_sha256"] == file_sha256(snapshot / "model.safetensors")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "chelsea.jpg").write_bytes((ASSETS / "chelsea.jpg").read_bytes())
    code = main(["everything", str(photos), "--out", str(tmp_path / "out"), "--sam-checkpoint", "someone/tiny-sam",
                 "--points-per-side", "2", "--device", "cpu"])
    assert code == 0 and (tmp_path / "out" / "chelsea.json").is_file()


def test_repo_id_missing_from_the_cache_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(CheckpointError) as error:
        build_sam(checkpoint="facebook/sam-vit-base")
    message = str(error.value)
    assert "'facebook/sam-vit-base'" in message and "HF_HUB_OFFLINE=1" in message and "Run once with network" in message


def test_folder_of_another_model_type(hf_folder, tmp_path):
    folder = hf_copy(hf_folder, tmp_path / "bert", edit_config=lambda config: config.update(model_type="bert"))
    with pytest.raises(CheckpointError, match=r"model_type 'bert', not 'sam'.*save_pretrained"):
        build_sam(checkpoint=folder)


def test_folder_without_weights_or_config(hf_folder, tmp_path):
    folder = hf_copy(hf_folder, tmp_path / "no-weights")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no model.safetensors.*save_pretrained"):
        build_sam(checkpoint=folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        build_sam(checkpoint=folder)


def test_mismatched_tensors_are_named_as_the_folder_names_them(hf_folder, tmp_path):
    def drop_neck(tensors):
        del tensors["vision_encoder.neck.conv1.weight"]

    def reshape_token(tensors):
        tensors["mask_decoder.iou_token.weight"] = torch.zeros(2, 256)

    with pytest.raises(CheckpointError, match=r"1 missing keys \['vision_encoder.neck.conv1.weight'\]"):
        build_sam(checkpoint=hf_copy(hf_folder, tmp_path / "missing", drop_neck))
    with pytest.raises(CheckpointError, match=r"1 with other shapes \['mask_decoder.iou_token.weight'\]"):
        build_sam(checkpoint=hf_copy(hf_folder, tmp_path / "shape", reshape_token))
    with pytest.raises(CheckpointError, match=r"not part of a transformers SamModel: \['vision_encoder.extra.weight'\]"):
        build_sam(checkpoint=hf_copy(hf_folder, tmp_path / "extra", lambda t: t.update({"vision_encoder.extra.weight": torch.zeros(1)})))
    patch_8 = hf_copy(hf_folder, tmp_path / "patch", edit_config=lambda config: config["vision_config"].update(patch_size=8))
    with pytest.raises(CheckpointError, match=r"vision_config.patch_size = 8 \(SAM: 16\)"):
        build_sam(checkpoint=patch_8)


def test_folder_of_another_size_than_requested(hf_folder, vit_b_hf_folder):
    with pytest.raises(CheckpointError, match=r"own architecture \(encoder width 192, depth 2\), but vit_b was requested"):
        build_sam("vit_b", checkpoint=hf_folder)
    with pytest.raises(CheckpointError, match=r"holds a vit_b checkpoint, but vit_h was requested.*sam_type='vit_b'"):
        build_sam("vit_h", checkpoint=vit_b_hf_folder)


def test_cli_convert_both_ways_and_refuses_to_overwrite(meta_checkpoint, hf_folder, tmp_path, capsys):
    path, state_dict = meta_checkpoint
    out = tmp_path / "again-hf"
    assert main(["convert", str(path), "--out", str(out), "--to", "hf"]) == 0
    assert load_file(out / "model.safetensors").keys() == load_file(hf_folder / "model.safetensors").keys()
    before = (out / "model.safetensors").read_bytes()
    assert main(["convert", str(path), "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["convert", str(path), "--out", str(out), "--overwrite"]) == 0
    assert (out / "model.safetensors").read_bytes() == before
    meta_file = tmp_path / "back.pth"
    assert main(["convert", str(out), "--out", str(meta_file), "--sam-type", "vit_b"]) == 2
    assert "but vit_b was requested" in capsys.readouterr().err and not meta_file.exists()
    assert main(["convert", str(out), "--out", str(meta_file)]) == 0
    assert torch.load(meta_file, weights_only=True).keys() == state_dict.keys()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again-hf", "back.pth"]


def test_cli_convert_bad_input_leaves_nothing(meta_checkpoint, tmp_path, capsys, monkeypatch):
    import lang_sam.segmenter.convert as convert

    path, _ = meta_checkpoint
    broken = tmp_path / "broken.pth"
    broken.write_bytes(path.read_bytes()[:1000])
    assert main(["convert", str(broken), "--out", str(tmp_path / "out")]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    assert main(["convert", str(path), "--out", str(tmp_path / "out.bin"), "--to", "meta"]) == 2
    assert "ending in .pth or .safetensors" in capsys.readouterr().err

    def fail_midway(folder, *args):
        (folder / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(convert, "_write_hf_folder", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        convert_checkpoint(path, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pth"]


def test_sam_folder_in_the_checkpoint_folder_is_a_sam_name(hf_folder, meta_checkpoint, tmp_path, auto_dtype):
    from lang_sam.interfaces.models import ModelPool
    from lang_sam.registry import FAMILY_MODELS, sam_names
    from lang_sam.settings import Settings

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    hf_copy(hf_folder, checkpoints / "my-hf-sam")
    hf_copy(hf_folder, checkpoints / "not-a-sam", edit_config=lambda config: config.update(model_type="bert"))
    assert sam_names(checkpoints) == ["vit_h", "vit_l", "vit_b", *FAMILY_MODELS, "my-hf-sam"]
    name, sam = load_sam("my-hf-sam", checkpoint_dir=checkpoints)
    _, state_dict = meta_checkpoint
    assert name == "my-hf-sam" and same_weights_in(sam, state_dict, auto_dtype)
    pool = ModelPool(Settings(sam_type="my-hf-sam", checkpoint_dir=str(checkpoints), device="cpu"))
    assert pool.check("my-hf-sam") == "my-hf-sam"


def test_convert_into_a_folder_that_cannot_be_written_fails_before_reading(meta_checkpoint, capsys, monkeypatch):
    import lang_sam.segmenter.convert as convert

    path, _ = meta_checkpoint
    reads = []
    monkeypatch.setattr(convert, "read_sam_checkpoint", lambda *args: reads.append(args))
    # /proc refuses new files even to root, as a read-only folder refuses them to a user
    assert main(["convert", str(path), "--out", "/proc/lang-sam-convert.pth", "--to", "meta"]) == 2
    error = capsys.readouterr().err
    assert "cannot be written" in error and "Traceback" not in error and reads == [], "refused before reading"


def test_convert_overwrite_replaces_only_a_model_folder(meta_checkpoint, tmp_path, capsys):
    path, _ = meta_checkpoint
    folder = tmp_path / "keep_hf"
    assert main(["convert", str(path), "--out", str(folder), "--to", "hf"]) == 0
    written = sorted(p.name for p in folder.iterdir())
    assert main(["convert", str(path), "--out", str(folder), "--to", "hf", "--overwrite"]) == 0, "its own output"
    (folder / "mine.txt").write_text("the user's notes")
    assert main(["convert", str(path), "--out", str(folder), "--to", "hf", "--overwrite"]) == 2
    error = capsys.readouterr().err
    assert "mine.txt" in error and "nothing of yours is deleted" in error
    assert (folder / "mine.txt").read_text() == "the user's notes"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*written, "mine.txt"])


@pytest.mark.parametrize(("vision", "named"), [
    ({"num_hidden_layers": 1_000_000}, "num_hidden_layers = 1000000"),
    ({"hidden_size": 0}, "hidden_size = 0"),
    ({"num_attention_heads": 7}, "not a multiple of num_attention_heads 7"),
    ({"global_attn_indexes": [1, 40]}, "global_attn_indexes [40]"),
])
def test_a_config_far_outside_any_sam_is_refused_before_building(vision, named, hf_folder, tmp_path, capsys):
    def edit(config):
        config["vision_config"].update(vision)
        config["vision_config"].pop("mlp_dim", None)

    folder = hf_copy(hf_folder, tmp_path / "huge", edit_config=edit)
    with pytest.raises(CheckpointError, match="describes no SAM image encoder") as error:
        architecture_from_hf_config(json.loads((folder / "config.json").read_text()))
    assert named in str(error.value)
    assert main(["convert", str(folder), "--out", str(tmp_path / "huge.pth")]) == 2
    assert named in capsys.readouterr().err and not (tmp_path / "huge.pth").exists()
    assert main(["export-onnx", "--checkpoint", str(folder), "--out", str(tmp_path / "onnx")]) == 2
    assert named in capsys.readouterr().err and not (tmp_path / "onnx").exists()


class RunsCode:
    """Unpickled, it would create the file marker."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_plain_pickle_holding_code_is_refused_as_code_and_never_run(meta_checkpoint, tmp_path, capsys):
    import pickle

    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"image_encoder.pos_embed": RunsCode(str(tmp_path / "code-ran"))}, protocol=4))
    assert main(["convert", str(plain), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "Refused to load" in error and "could run code" in error and "corrupt" not in error
    assert not (tmp_path / "code-ran").exists(), "unpickling ran code"
    legacy = tmp_path / "legacy.pth"  # torch.save's format before PyTorch 1.6: a pickle, read safely
    path, state_dict = meta_checkpoint
    torch.save(state_dict, legacy, _use_new_zipfile_serialization=False)
    assert main(["convert", str(legacy), "--out", str(tmp_path / "from-legacy")]) == 0
    assert load_file(tmp_path / "from-legacy" / "model.safetensors").keys() == meta_to_hf(state_dict, architecture_of(
        build_sam(checkpoint=path)))[0].keys()
