"""The Segment Anything model: image encoder, prompt encoder and mask decoder together, with
segment-anything's public surface (batched forward, preprocess, postprocess_masks), and the
stateless functions that run it: encode_image once per image, decode_prompts (or decode_low_res)
any number of times against the ImageEmbedding it gives."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lang_sam.errors import InvalidImageError, InvalidPromptError
from lang_sam.segmenter import processing
from lang_sam.segmenter.image_encoder import ImageEncoderViT
from lang_sam.segmenter.mask_decoder import MaskDecoder
from lang_sam.segmenter.prompt_encoder import PromptEncoder
from lang_sam.vocabulary import ImageEmbedding

PROMPT_KEYS = ("point_coords", "point_labels", "boxes", "mask_inputs")


@torch.inference_mode()
def encode_image(sam: Sam, transformed_image: torch.Tensor, original_size: tuple[int, int]) -> ImageEmbedding:
    """Run the image encoder on an image already resized to processing.resize_image's size: (1, 3,
    h, w) pixels in 0..255 (any dtype)."""
    expected = processing.resized_shape(original_size)
    if transformed_image.ndim != 4 or transformed_image.shape[:2] != (1, 3) or tuple(transformed_image.shape[2:]) != expected:
        raise InvalidImageError(
            f"The image must be resized to (1, 3, {expected[0]}, {expected[1]}) for an original size of "
            f"{tuple(original_size)} (ResizeLongestSide(1024).apply_image does it), got {tuple(transformed_image.shape)}."
        )
    encoder = sam.image_encoder
    features = encoder(sam.preprocess(transformed_image.to(encoder.pos_embed.device)).to(encoder.pos_embed.dtype)).float()
    return ImageEmbedding(features, tuple(original_size), expected)


@torch.inference_mode()
def decode_prompts(
    sam: Sam,
    embedding: ImageEmbedding,
    point_coords: torch.Tensor | None = None,
    point_labels: torch.Tensor | None = None,
    boxes: torch.Tensor | None = None,
    mask_input: torch.Tensor | None = None,
    multimask_output: bool = True,
    return_logits: bool = False,
    prompts_in_image_pixels: bool = False,
    decoder_batch_size: int = 16,
    upscale: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Masks for a batch of B prompts against one embedding, decoded decoder_batch_size at a time,
    each chunk taken to full resolution before the next (memory grows only with the masks returned).

    point_coords: (B, N, 2); point_labels: (B, N); boxes: (B, 4) xyxy; mask_input: (B, 1, 256, 256).
    Coordinates are in the resized 1024 frame, as in segment-anything, unless
    prompts_in_image_pixels, when they are in original image pixels.
    Returns masks (B, M, H, W) (None unless upscale), IoU predictions (B, M) and low-res logits
    (B, M, 256, 256).
    """
    if prompts_in_image_pixels:
        if point_coords is not None:
            point_coords = processing.transform_coords(point_coords, embedding.original_size)
        if boxes is not None:
            boxes = processing.transform_boxes(boxes, embedding.original_size)
    batch = next((t.shape[0] for t in (point_coords, boxes, mask_input) if t is not None), 1)
    results = [
        _decode_chunk(
            sam,
            embedding,
            *(_rows(t, start, decoder_batch_size) for t in (point_coords, point_labels, boxes, mask_input)),
            multimask_output,
            return_logits,
            upscale,
        )
        for start in range(0, batch, decoder_batch_size)
    ]
    masks, iou, low_res = zip(*results)
    return torch.cat(masks) if upscale else None, torch.cat(iou), torch.cat(low_res)


def _decode_chunk(sam, embedding, point_coords, point_labels, boxes, mask_input, multimask_output, return_logits, upscale):
    low_res, iou = decode_low_res(sam, embedding, point_coords, point_labels, boxes, mask_input, multimask_output)
    if not upscale:
        return None, iou, low_res
    masks = processing.postprocess_masks(low_res, embedding.input_size, embedding.original_size)
    if not return_logits:
        masks = masks > processing.MASK_THRESHOLD
    return masks, iou, low_res


@torch.inference_mode()
def decode_low_res(
    sam: Sam,
    embedding: ImageEmbedding,
    point_coords: torch.Tensor | None = None,
    point_labels: torch.Tensor | None = None,
    boxes: torch.Tensor | None = None,
    mask_input: torch.Tensor | None = None,
    multimask_output: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of the prompt encoder and mask decoder, prompts in the resized 1024 frame: low-res
    logits (B, M, 256, 256) and IoU predictions (B, M), float32, nothing taken to full resolution
    (callers that filter first, like the automatic mask generator, upscale only what they keep)."""
    points = (point_coords, point_labels) if point_coords is not None else None
    sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
    dtype = sam.mask_decoder.iou_token.weight.dtype
    low_res, iou = sam.mask_decoder(
        image_embeddings=embedding.features.to(dtype),
        image_pe=sam.prompt_encoder.get_dense_pe().to(dtype),
        sparse_prompt_embeddings=sparse.to(dtype),
        dense_prompt_embeddings=dense.to(dtype),
        multimask_output=multimask_output,
    )
    return low_res.float(), iou.float()


def _rows(tensor: torch.Tensor | None, start: int, count: int) -> torch.Tensor | None:
    return None if tensor is None else tensor[start : start + count]


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
