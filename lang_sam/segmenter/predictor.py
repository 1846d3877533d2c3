"""Prompt SAM against one cached image embedding, with the API SAM users know."""

from __future__ import annotations

import numpy as np
import torch

from lang_sam.errors import InvalidImageError, InvalidOptionError, InvalidPromptError
from lang_sam.segmenter.sam import Sam, decode_prompts, encode_image
from lang_sam.vocabulary import ImageEmbedding
from lang_sam.segmenter.transforms import ResizeLongestSide


class SamPredictor:
    """Encodes an image once (``set_image``) and answers any number of prompts against it, with the
    API SAM users know. It holds one image at a time: to share a model between threads, use
    encode_image and decode_prompts (LangSAM does), which keep nothing.

    A batch of prompts is decoded ``decoder_batch_size`` at a time and each chunk is taken to full
    resolution before the next, so memory does not grow with the batch beyond the returned masks.
    """

    def __init__(self, sam: Sam, decoder_batch_size: int = 16) -> None:
        self.model = sam
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)
        self.decoder_batch_size = decoder_batch_size
        self.reset_image()

    @property
    def device(self) -> torch.device:
        return self.model.prompt_encoder.no_mask_embed.weight.device

    def reset_image(self) -> None:
        self.embedding: ImageEmbedding | None = None

    @property
    def is_image_set(self) -> bool:
        return self.embedding is not None

    @property
    def features(self) -> torch.Tensor | None:
        return None if self.embedding is None else self.embedding.features

    @property
    def original_size(self) -> tuple[int, int] | None:
        return None if self.embedding is None else self.embedding.original_size

    @property
    def input_size(self) -> tuple[int, int] | None:
        return None if self.embedding is None else self.embedding.input_size

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Encode an (H, W, 3) uint8 image, its channels in image_format order ("RGB", or "BGR" as
        OpenCV reads files), and keep its embedding."""
        if image_format not in ("RGB", "BGR"):
            raise InvalidOptionError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}.")
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            described = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image)
            raise InvalidImageError(f"set_image takes an (H, W, 3) uint8 RGB array, got a {described}.")
        if min(image.shape[:2]) < 1:
            raise InvalidImageError(f"The image is empty (shape {image.shape}).")
        if image_format != self.model.image_format:
            image = np.ascontiguousarray(image[..., ::-1])
        resized = self.transform.apply_image(image)
        self.set_torch_image(torch.from_numpy(resized).permute(2, 0, 1)[None], image.shape[:2])

    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size: tuple[int, int]) -> None:
        """Encode an image already resized to processing.resize_image's size: (1, 3, h, w) pixels in
        0..255 (any dtype), as segment-anything's method of the same name takes them."""
        self.embedding = encode_image(self.model, transformed_image, original_image_size)

    def set_embedding(self, embedding: ImageEmbedding) -> None:
        """Answer prompts against an embedding computed before (a cached one)."""
        self.embedding = embedding

    def get_image_embedding(self) -> torch.Tensor:
        """The (1, 256, 64, 64) embedding of the image set."""
        return self._require_image().features

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict masks for one prompt given in original image pixels.

        point_coords: (N, 2) xy; point_labels: (N,) 1 foreground, 0 background; box: (4,) xyxy;
        mask_input: (1, 256, 256) low-res logits from an earlier call.
        Returns masks (M, H, W) (bool, or float logits with return_logits), IoU scores (M,) and
        low-res logits (M, 256, 256), with M = 3 when multimask_output else 1.
        """
        self._require_image()
        if (point_coords is None) != (point_labels is None):
            raise InvalidPromptError("point_coords and point_labels must be given together.")
        coords = labels = boxes = masks = None
        if point_coords is not None:
            point_coords = np.asarray(point_coords, dtype=np.float64)
            point_labels = np.asarray(point_labels)
            if point_coords.ndim != 2 or point_coords.shape[1] != 2 or point_labels.shape != point_coords.shape[:1]:
                raise InvalidPromptError(
                    f"point_coords must be (N, 2) and point_labels (N,); got {point_coords.shape} and {point_labels.shape}."
                )
            coords = torch.as_tensor(point_coords, dtype=torch.float32, device=self.device)[None]
            labels = torch.as_tensor(point_labels, dtype=torch.int64, device=self.device)[None]
        if box is not None:
            boxes = torch.as_tensor(np.asarray(box, dtype=np.float64).reshape(1, 4), dtype=torch.float32, device=self.device)
        if mask_input is not None:
            masks = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32, device=self.device)[None]
        out_masks, iou, low_res = self.predict_torch(
            coords, labels, boxes, masks, multimask_output, return_logits, prompts_in_image_pixels=True
        )
        return out_masks[0].cpu().numpy(), iou[0].cpu().numpy(), low_res[0].cpu().numpy()

    def predict_torch(
        self,
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        prompts_in_image_pixels: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """decode_prompts (its shapes, its chunking) against the image set, with segment-anything's
        arguments: coordinates in the resized 1024 frame unless prompts_in_image_pixels."""
        return decode_prompts(
            self.model, self._require_image(), point_coords, point_labels, boxes, mask_input, multimask_output,
            return_logits, prompts_in_image_pixels, self.decoder_batch_size,
        )

    def _require_image(self) -> ImageEmbedding:
        if self.embedding is None:
            raise InvalidImageError("No image is set: call set_image(image) before predicting.")
        return self.embedding
