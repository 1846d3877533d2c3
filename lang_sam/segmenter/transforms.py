"""segment-anything's ResizeLongestSide over lang-sam's processing functions, so code written for
Meta's package (``predictor.transform.apply_boxes_torch(...)``, its batched-input notebook) runs
unchanged."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lang_sam.segmenter import processing


class ResizeLongestSide:
    """Resizes images so their longest side is target_length, and maps points and boxes of the
    original image into that frame (the frame SAM's prompt encoder takes)."""

    def __init__(self, target_length: int) -> None:
        self.target_length = target_length

    @staticmethod
    def get_preprocess_shape(oldh: int, oldw: int, long_side_length: int) -> tuple[int, int]:
        """(h, w) of an oldh x oldw image resized to longest side long_side_length."""
        return processing.resized_shape((oldh, oldw), long_side_length)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """An (H, W, 3) uint8 array resized with PIL's bilinear filter."""
        return processing.resize_image(image, self.target_length)

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """(..., 2) xy pixels of an original_size image, in the resized frame (float64 copy)."""
        return processing.transform_coords(coords, tuple(original_size), self.target_length)

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """(B, 4) xyxy boxes of an original_size image, in the resized frame."""
        return processing.transform_boxes(boxes, tuple(original_size), self.target_length)

    def apply_image_torch(self, image: torch.Tensor) -> torch.Tensor:
        """A (B, 3, H, W) float batch resized with antialiased bilinear interpolation."""
        size = processing.resized_shape(tuple(image.shape[-2:]), self.target_length)
        return F.interpolate(image, size, mode="bilinear", align_corners=False, antialias=True)

    def apply_coords_torch(self, coords: torch.Tensor, original_size: tuple[int, ...]) -> torch.Tensor:
        """apply_coords for a tensor (float32 copy, on the tensor's device)."""
        return processing.transform_coords(coords, tuple(original_size), self.target_length)

    def apply_boxes_torch(self, boxes: torch.Tensor, original_size: tuple[int, ...]) -> torch.Tensor:
        """apply_boxes for a tensor (float32 copy, on the tensor's device)."""
        return processing.transform_boxes(boxes, tuple(original_size), self.target_length)
