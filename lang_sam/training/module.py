"""The LightningModule that fine-tunes SAM's mask decoder on cached image embeddings: the image
encoder frozen (it never runs here: data.py encodes each image once), the prompt encoder frozen
unless asked, box (and point) prompts decoded with SAM's single-mask output."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torchmetrics import MeanMetric

from lang_sam.segmenter import processing
from lang_sam.segmenter.sam import Sam
from lang_sam.training.losses import mask_iou, sam_loss

VALIDATION_METRIC = "val_miou"  # mean IoU of box-prompted masks at the images' own size


class SamFinetuneModule(L.LightningModule):
    """Trains the mask decoder (and the prompt encoder with train_prompt_encoder) with SAM's loss,
    for SAM's single-mask output (the one SAM's authors use for a box).

    Checkpoints hold only what training changes (the image encoder's tensors are left out: they
    stay those of the SAM the run started from), so a vit_h run's checkpoints are megabytes, not
    gigabytes."""

    def __init__(self, sam: Sam, learning_rate: float = 1e-4, weight_decay: float = 0.0, train_prompt_encoder: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["sam"])
        self.sam = sam.float()
        self.sam.image_encoder.requires_grad_(False).eval()
        self.sam.prompt_encoder.requires_grad_(train_prompt_encoder)
        self.sam.mask_decoder.requires_grad_(True)
        # Boxes decode with the single-mask output: the heads of the three multimask outputs do not
        # take part (and DDP requires every trained parameter to), so they stay as they were.
        self.sam.mask_decoder.output_hypernetworks_mlps[1:].requires_grad_(False)
        self.val_iou = MeanMetric()
        self.strict_loading = False  # checkpoints leave the frozen image encoder out

    def forward(self, features: torch.Tensor, boxes: torch.Tensor, points: torch.Tensor | None = None,
                point_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, 256, 64, 64) or (1, ...) for prompts on one image; boxes (B, 4) and points
        (B, K, 2) in SAM's resized frame. Returns low-res logits (B, 256, 256) and predicted IoU (B,)."""
        sparse, dense = self.sam.prompt_encoder(
            points=None if points is None else (points, point_labels), boxes=boxes, masks=None)
        logits, iou = self.sam.mask_decoder(
            image_embeddings=features, image_pe=self.sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False)
        return logits[:, 0], iou[:, 0]

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        logits, iou = self(batch["features"], batch["boxes"], batch.get("points"), batch.get("point_labels"))
        losses = sam_loss(logits, iou, batch["targets"])
        self.log_dict({f"train_{name}": value for name, value in losses.items()}, batch_size=len(logits), sync_dist=True)
        return losses["loss"]

    def validation_step(self, batch: dict[str, Any], batch_index: int) -> None:
        """One image: each object's exact box, its mask at the image's size, IoU with the truth."""
        logits, _ = self(batch["features"], batch["boxes"])
        masks = processing.postprocess_masks(logits[:, None], batch["input_size"], batch["original_size"])[:, 0]
        self.val_iou.update(mask_iou(masks, batch["masks"]))
        self.log(VALIDATION_METRIC, self.val_iou, on_epoch=True, batch_size=len(logits))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        trained = [parameter for parameter in self.parameters() if parameter.requires_grad]
        return torch.optim.AdamW(trained, lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        frozen = "sam.image_encoder."
        checkpoint["state_dict"] = {name: value for name, value in checkpoint["state_dict"].items() if not name.startswith(frozen)}
