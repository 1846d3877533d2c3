"""The Segment Anything model: image encoder, prompt encoder and mask decoder together, with
segment-anything's public surface (batched forward, preprocess, postprocess_masks)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lang_sam.errors import InvalidImageError, InvalidPromptError
from lang_sam.segmenter import processing
from lang_sam.segmenter.image_encoder import ImageEncoderViT
from lang_sam.segmenter.mask_decoder import MaskDecoder
from lang_sam.segmenter.predictor import decode_prompts, encode_image
from lang_sam.segmenter.prompt_encoder import PromptEncoder

PROMPT_KEYS = ("point_coords", "point_labels", "boxes", "mask_inputs")


class Sam(nn.Module):
    """Holds the three parts under the names Meta's checkpoints use.

    Pre- and post-processing live in ``lang_sam.segmenter.processing``; prompting one image lives
    in ``SamPredictor``. ``forward`` answers segment-anything's batched input with the same
    decoding (shared image projection, chunked upscaling).
    """

    mask_threshold: float = processing.MASK_THRESHOLD
    image_format: str = "RGB"

    def __init__(self, image_encoder: ImageEncoderViT, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder):
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        # Not persistent: Meta's checkpoints do not hold them, and loading stays strict.
        self.register_buffer("pixel_mean", torch.tensor(processing.PIXEL_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(processing.PIXEL_STD).view(3, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(3, h, w) or (B, 3, h, w) pixels in 0..255, resized to longest side 1024, to the
        normalised, zero-padded 1024x1024 input of the image encoder."""
        return processing.normalize_and_pad(x.float(), self.image_encoder.img_size)

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, ...], original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """(B, M, 256, 256) low-res logits to (B, M, H, W) logits of the original image."""
        return processing.postprocess_masks(masks, tuple(input_size), tuple(original_size))

    @torch.inference_mode()
    def forward(self, batched_input: list[dict[str, Any]], multimask_output: bool) -> list[dict[str, torch.Tensor]]:
        """segment-anything's batched call: one dict per image with ``image`` (3, h, w), resized to
        longest side 1024 (ResizeLongestSide.apply_image), ``original_size`` (H, W), and optionally
        ``point_coords`` (B, N, 2) with ``point_labels`` (B, N), ``boxes`` (B, 4) and
        ``mask_inputs`` (B, 1, 256, 256), coordinates in the resized frame. Returns one dict per
        image: ``masks`` (B, M, H, W) bool, ``iou_predictions`` (B, M), ``low_res_logits``
        (B, M, 256, 256). Images are encoded one at a time, so memory does not grow with the batch.
        """
        if not isinstance(batched_input, (list, tuple)):
            raise InvalidPromptError(f"Sam takes a list of dicts, one per image; got a {type(batched_input).__name__}.")
        outputs = []
        for index, record in enumerate(batched_input):
            image, original_size = _checked_record(record, index)
            embedding = encode_image(self, image[None], original_size)
            prompts = [None if record.get(key) is None else record[key].to(self.device) for key in PROMPT_KEYS]
            masks, iou, low_res = decode_prompts(self, embedding, *prompts, multimask_output=multimask_output)
            outputs.append({"masks": masks, "iou_predictions": iou, "low_res_logits": low_res})
        return outputs


def _checked_record(record: object, index: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """A batched_input entry's image and original size, or an error naming the key at fault."""
    where = f"batched_input[{index}]"
    if not isinstance(record, dict):
        raise InvalidPromptError(f"{where} must be a dict with 'image' and 'original_size'; got a {type(record).__name__}.")
    for key in ("image", "original_size"):
        if key not in record:
            raise InvalidPromptError(f"{where} has no {key!r} key; each entry needs 'image' and 'original_size'.")
    image = record["image"]
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InvalidImageError(
            f"{where}['image'] must be a (3, h, w) tensor resized with ResizeLongestSide.apply_image; got {shape}."
        )
    original_size = record["original_size"]
    if not isinstance(original_size, (tuple, list, torch.Size)) or len(original_size) != 2 or min(original_size) < 1:
        raise InvalidImageError(f"{where}['original_size'] must be (H, W); got {original_size!r}.")
    if (record.get("point_coords") is None) != (record.get("point_labels") is None):
        raise InvalidPromptError(f"{where} has only one of 'point_coords' and 'point_labels'; give both or neither.")
    for key in PROMPT_KEYS:
        if record.get(key) is not None and not isinstance(record[key], torch.Tensor):
            raise InvalidPromptError(f"{where}[{key!r}] must be a tensor; got a {type(record[key]).__name__}.")
    return image, (int(original_size[0]), int(original_size[1]))
