"""SAM in ONNX: the prompt decoder with segment-anything's exported interface, and the image encoder.

The decoder's inputs and outputs are those of Meta's ``scripts/export_onnx_model.py``, so code
written for Meta's exported decoder (and its web demo) runs on ours unchanged:

inputs   image_embeddings (1, 256, 64, 64) float; point_coords (1, N, 2) float, in the resized
         1024 frame; point_labels (1, N) float: 1 object, 0 background, 2 and 3 a box's corners,
         -1 padding; mask_input (1, 1, 256, 256) float; has_mask_input (1,) float; orig_im_size
         (2,) float, (H, W)
outputs  masks (1, M, H, W) logits; iou_predictions (1, M); low_res_masks (1, M, 256, 256), with
         M = 1 (the best mask: the single-mask token when more than two points are given, else the
         multimask candidate with the highest predicted IoU, as Meta's export picks) or 4.

The encoder takes the image already resized to longest side 1024, (h, w, 3) uint8 RGB, and
normalises and pads it inside, as SamPredictor does; it outputs image_embeddings.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lang_sam.errors import InvalidOptionError
from lang_sam.io.files import FILE_MODE, check_output_folder
from lang_sam.segmenter import processing
from lang_sam.segmenter.sam import Sam

DECODER_INPUTS = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"]
DECODER_OUTPUTS = ["masks", "iou_predictions", "low_res_masks"]
OPSET = 17
# The opsets SAM exports to: 14 is the first with scaled_dot_product_attention's operators, 23 the last
# PyTorch's exporter writes (measured with torch 2.14: 13 fails on attention, 24 is refused).
MIN_OPSET, MAX_OPSET = 14, 23


class SamOnnxModel(nn.Module):
    """Prompt encoder, mask decoder and mask post-processing of one SAM, written with operations
    that trace to ONNX (no indexing by labels, no Python branches on values)."""

    def __init__(self, model: Sam, return_single_mask: bool = True) -> None:
        super().__init__()
        self.model = model
        self.return_single_mask = return_single_mask

    def _embed_points(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> torch.Tensor:
        encoder = self.model.prompt_encoder
        encoding = encoder.pe_layer._encode((point_coords + 0.5) / processing.IMAGE_SIZE)
        labels = point_labels.unsqueeze(-1)
        embedding = encoding * (labels != -1) + encoder.not_a_point_embed.weight * (labels == -1)
        for index, point_embedding in enumerate(encoder.point_embeddings):
            embedding = embedding + point_embedding.weight * (labels == index)
        return embedding

    def _embed_mask(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        encoder = self.model.prompt_encoder
        no_mask = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return has_mask_input * encoder.mask_downscaling(mask_input) + (1 - has_mask_input) * no_mask

    def _upscale(self, masks: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
        masks = F.interpolate(masks, size=(processing.IMAGE_SIZE, processing.IMAGE_SIZE), mode="bilinear", align_corners=False)
        size = orig_im_size.to(torch.float32)
        resized = torch.floor(size * (processing.IMAGE_SIZE / torch.max(size)) + 0.5).to(torch.int64)
        masks = masks[..., : resized[0], : resized[1]]
        height, width = orig_im_size.to(torch.int64)[0], orig_im_size.to(torch.int64)[1]
        return F.interpolate(masks, size=(height, width), mode="bilinear", align_corners=False)

    @torch.no_grad()
    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size):
        sparse = self._embed_points(point_coords, point_labels)
        dense = self._embed_mask(mask_input, has_mask_input)
        decoder = self.model.mask_decoder
        masks, scores = decoder.predict_masks(
            image_embeddings, self.model.prompt_encoder.get_dense_pe(), sparse, dense, range(decoder.num_mask_tokens))
        if self.return_single_mask:
            # More than two points (e.g. a box and a click): the single-mask token; else the best candidate.
            reweight = torch.tensor([[1000.0] + [0.0] * (decoder.num_mask_tokens - 1)], device=scores.device)
            best = torch.argmax(scores + (point_coords.shape[1] - 2.5) * reweight, dim=1)
            masks = masks[torch.arange(masks.shape[0]), best].unsqueeze(1)
            scores = scores[torch.arange(scores.shape[0]), best].unsqueeze(1)
        return self._upscale(masks, orig_im_size), scores, masks


class SamOnnxEncoder(nn.Module):
    """The image encoder on a resized (h, w, 3) uint8 RGB image: normalised and padded inside."""

    def __init__(self, model: Sam) -> None:
        super().__init__()
        self.encoder = model.image_encoder

    @torch.no_grad()
    def forward(self, input_image: torch.Tensor) -> torch.Tensor:
        pixels = input_image.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
        return self.encoder(processing.normalize_and_pad(pixels))


def export_onnx(model: Sam, out: Path, quantize: bool = False, encoder: bool = False,
                return_single_mask: bool = True, opset: int = OPSET) -> list[Path]:
    """Write OUT/decoder.onnx, with quantize OUT/decoder_quantized.onnx (int8 dynamic), with
    encoder OUT/encoder.onnx; each through a temporary file renamed into place. Returns the paths."""
    out = Path(out)
    check_opset(opset)
    check_output_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    written = [_atomic(out / "decoder.onnx", lambda path: _export_decoder(model, path, return_single_mask, opset))]
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        written.append(_atomic(out / "decoder_quantized.onnx",
                               lambda path: quantize_dynamic(str(written[0]), str(path), weight_type=QuantType.QUInt8)))
    if encoder:
        written.append(_atomic(out / "encoder.onnx", lambda path: _export_encoder(model, path, opset)))
    return written


def check_opset(opset: int) -> None:
    """Refuse, before any model loads, an opset SAM cannot be exported to."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise InvalidOptionError(f"--opset {opset!r}: SAM exports to ONNX opsets {MIN_OPSET} to {MAX_OPSET} "
                                 f"(default {OPSET}); choose one of those.")


def _export_decoder(model: Sam, path: Path, return_single_mask: bool, opset: int) -> None:
    embed_dim = model.prompt_encoder.embed_dim
    height, width = model.prompt_encoder.image_embedding_size
    example = (
        torch.randn(1, embed_dim, height, width),
        torch.randint(0, processing.IMAGE_SIZE, (1, 5, 2), dtype=torch.float32),
        torch.randint(0, 4, (1, 5), dtype=torch.float32),
        torch.randn(1, 1, 4 * height, 4 * width),
        torch.tensor([1.0]),
        torch.tensor([1500.0, 2250.0]),
    )
    dynamic = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}
    _export(SamOnnxModel(model, return_single_mask), example, path, DECODER_INPUTS, DECODER_OUTPUTS, dynamic, opset)


def _export_encoder(model: Sam, path: Path, opset: int) -> None:
    example = (torch.randint(0, 256, (768, processing.IMAGE_SIZE, 3), dtype=torch.uint8),)
    dynamic = {"input_image": {0: "height", 1: "width"}}
    _export(SamOnnxEncoder(model), example, path, ["input_image"], ["image_embeddings"], dynamic, opset)


def _export(module: nn.Module, example: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic: dict, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's tracer warnings on shape arithmetic
        torch.onnx.export(module, example, str(path), export_params=True, opset_version=opset, do_constant_folding=True,
                          input_names=inputs, output_names=outputs, dynamic_axes=dynamic, dynamo=False)


def _atomic(destination: Path, write) -> Path:
    """Run write(temporary path) beside destination, then rename: never a half-written file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, destination)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return destination
