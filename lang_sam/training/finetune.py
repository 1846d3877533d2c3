"""``lang-sam finetune``: check the data and the SAM, then lightning.Trainer fits the mask decoder
and the best model (by validation mIoU) is written as RUN_DIR/model.pth (Meta's format, a full SAM
state dict) and RUN_DIR/hf/ (transformers' format), each written whole or not at all.

RUN_DIR holds what Lightning writes: checkpoints/ (the best epoch's, the latest epoch's and
last.ckpt linking to it, to resume), logs/
(CSVLogger's metrics.csv), and summary.json (the mIoU before and after, steps, time)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import torch

from lang_sam.errors import CheckpointError, InvalidOptionError
from lang_sam.io.files import check_output_folder, write_atomically
from lang_sam.io.weights import read_weights_file
from lang_sam.segmenter.build import architecture_of, load_sam
from lang_sam.training.data import FinetuneData, default_cache_dir, read_finetune_dataset
from lang_sam.training.module import VALIDATION_METRIC, SamFinetuneModule

CHECKPOINTS = "checkpoints"
MODEL_FILE, HF_FOLDER, SUMMARY_FILE = "model.pth", "hf", "summary.json"


@dataclass
class FinetuneConfig:
    """What lang-sam finetune takes (its flags, same names)."""

    coco: Path
    images: Path
    out: Path
    sam_type: str | None = "vit_b"
    sam_checkpoint: Path | None = None
    epochs: int = 10
    max_steps: int = -1
    val_fraction: float = 0.1
    batch_size: int = 8
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    box_jitter: float = 20.0
    points_per_box: int = 0
    train_prompt_encoder: bool = False
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    resume: bool = False
    seed: int = 0
    cache_dir: Path | None = None
    show_progress: bool = True
    checkpoint_dir: Path | None = None  # where SAM names are looked up ($LANG_SAM_CHECKPOINTS)
    extra: dict = field(default_factory=dict)  # Trainer arguments of your own (e.g. log_every_n_steps)


def finetune(config: FinetuneConfig, callbacks: Sequence[L.Callback] = ()) -> dict:
    """Fine-tune and write the run's outputs; returns the summary (also RUN_DIR/summary.json).
    Every check that can fail (data, SAM size, resume) fails before training starts; callbacks:
    Lightning callbacks of your own, added to the run's."""
    out = Path(config.out)
    check_finetune_options(config)
    _check_run_folder(out, config.resume)
    dataset = read_finetune_dataset(config.coco, config.images, config.val_fraction)
    best = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=out / CHECKPOINTS, filename="best-{epoch}-{step}", monitor=VALIDATION_METRIC, mode="max", save_top_k=1)
    # Every epoch's end, whatever its score, for --resume: last.ckpt links to it (Lightning's save_last
    # on the best callback would follow only the epochs that improved).
    latest = L.pytorch.callbacks.ModelCheckpoint(dirpath=out / CHECKPOINTS, filename="epoch-{epoch}", save_top_k=1,
                                                 save_last="link")
    trainer = _trainer(config, out, [best, latest, *callbacks])  # before the SAM loads: Lightning checks its options
    sam_name, sam = load_sam(config.sam_type, config.sam_checkpoint, "float32", config.checkpoint_dir)
    L.seed_everything(config.seed, workers=True, verbose=False)
    data = FinetuneData(dataset, sam, config.cache_dir or default_cache_dir() / "embeddings", config.batch_size,
                        config.box_jitter, config.points_per_box, config.seed, config.show_progress)
    module = SamFinetuneModule(sam, config.learning_rate, config.weight_decay, config.train_prompt_encoder)
    started = time.perf_counter()
    before = None
    if not config.resume:  # the untrained model's score, to compare with
        before = trainer.validate(module, datamodule=data, verbose=False)[0][VALIDATION_METRIC]
    trainer.fit(module, datamodule=data, ckpt_path="last" if config.resume else None)
    summary = {
        "sam": sam_name, "train_instances": len(dataset.train), "val_instances": len(dataset.val),
        "val_images": len({i.file_name for i in dataset.val}), f"{VALIDATION_METRIC}_before": before,
        f"{VALIDATION_METRIC}_best": float(best.best_model_score) if best.best_model_score is not None else None,
        "steps": trainer.global_step, "epochs": trainer.current_epoch, "seconds": round(time.perf_counter() - started, 1),
        "config": {key: str(value) if isinstance(value, Path) else value for key, value in asdict(config).items()},
    }
    if trainer.is_global_zero:
        _write_best(module, best.best_model_path, out)
        write_atomically(out / SUMMARY_FILE, lambda file: file.write(json.dumps(summary, indent=1).encode()))
    return summary


def check_finetune_options(config: FinetuneConfig) -> None:
    """Refuse, before anything loads, the numbers of a run that Lightning or the data loader would
    reject with a traceback, or accept and train nothing with (0 epochs or steps)."""
    devices = config.devices  # a count is checked here; what else Lightning takes ("0,1", [0, 1]) is Lightning's to judge
    if isinstance(devices, bool) or (_is_whole(devices) and not (devices >= 1 or devices == -1)):
        raise InvalidOptionError(f"--devices must be a whole number >= 1 (processes to train on), -1 (all) or auto, "
                                 f"got {devices!r}.")
    for flag, value, least in (("--epochs", config.epochs, 1), ("--batch-size", config.batch_size, 1),
                               ("--points-per-box", config.points_per_box, 0)):
        if not (_is_whole(value) and value >= least):
            raise InvalidOptionError(f"{flag} must be a whole number >= {least}, got {value!r}.")
    if not (_is_whole(config.max_steps) and (config.max_steps == -1 or config.max_steps >= 1)):
        raise InvalidOptionError(f"--max-steps must be -1 (no limit) or a whole number >= 1, got {config.max_steps!r}.")
    for flag, value, positive in (("--lr", config.learning_rate, True), ("--box-jitter", config.box_jitter, False),
                                  ("weight_decay", config.weight_decay, False)):
        if not (_is_number(value) and (value > 0 if positive else value >= 0)):
            raise InvalidOptionError(f"{flag} must be a number {'>' if positive else '>='} 0, got {value!r}.")


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _trainer(config: FinetuneConfig, out: Path, callbacks: list[L.Callback]) -> L.Trainer:
    """The run's Trainer; options Lightning refuses (accelerator, devices, strategy, precision, extra)
    are an InvalidOptionError with Lightning's reason. Nothing is written until fit."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return L.Trainer(
            accelerator=config.accelerator, devices=config.devices, strategy=config.strategy, precision=config.precision,
            max_epochs=config.epochs, max_steps=config.max_steps, default_root_dir=out, callbacks=callbacks,
            logger=L.pytorch.loggers.CSVLogger(out, name="logs"), reload_dataloaders_every_n_epochs=1,
            num_sanity_val_steps=0, enable_progress_bar=config.show_progress, enable_model_summary=False,
            inference_mode=False,  # validation under no_grad: the mIoU metric, first updated by validate(), stays writable
            **config.extra,
        )
    except (MisconfigurationException, ValueError, TypeError) as error:  # what Lightning raises for options it refuses
        raise InvalidOptionError(f"Lightning refused the training options: {error} (see lang-sam finetune --help).") from None


def _check_run_folder(out: Path, resume: bool) -> None:
    check_output_folder(out)
    last = out / CHECKPOINTS / "last.ckpt"
    if resume and not last.is_file():
        raise InvalidOptionError(f"There is no run to resume in {out} ({last} is missing); run without --resume.")
    if resume:
        _check_resume_checkpoint(last)
    if not resume and (out / CHECKPOINTS).is_dir() and any((out / CHECKPOINTS).iterdir()):
        raise InvalidOptionError(f"{out} holds a run already: --resume continues it; or give another --out.")


def _check_resume_checkpoint(last: Path) -> None:
    """Read last.ckpt as read_weights_file reads weights (tensors and plain containers only: a file
    that would run code is refused, never run) and check it is a Lightning training checkpoint, so
    a bad one is a CheckpointError naming it before anything loads, not an error from Lightning
    (whose advice to pass weights_only=False would run the code)."""
    remedy = ("It is not a checkpoint a finetune run wrote: start a new run (another --out, without --resume), or put "
              "back the run's own checkpoint.")
    checkpoint = read_weights_file(last, "the checkpoint to resume", remedy)
    if not isinstance(checkpoint, dict) or not {"state_dict", "optimizer_states", "loops"} <= checkpoint.keys():
        raise CheckpointError(f"{last} is not a Lightning training checkpoint (it lacks the model's, the optimizer's "
                              f"or the loops' state). {remedy}")


def _write_best(module: SamFinetuneModule, best_path: str, out: Path) -> None:
    """The best checkpoint's weights over the SAM the run started from, as model.pth and hf/."""
    from lang_sam.segmenter.convert import save_hf_folder

    if best_path:
        trained = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(trained, strict=False)
    state_dict = {name: tensor.detach().cpu().contiguous() for name, tensor in module.sam.state_dict().items()}
    write_atomically(out / MODEL_FILE, lambda file: torch.save(state_dict, file))
    save_hf_folder(state_dict, architecture_of(module.sam), out / HF_FOLDER)
