"""SAM's pre- and post-processing, as pure functions of arrays and tensors.

The model sees a 1024x1024 frame: the image is resized so its longest side is 1024, normalised
and zero-padded at the bottom and right. Prompts are mapped into that frame; low-res mask logits
are mapped back to the original image size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGE_SIZE = 1024
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
MASK_THRESHOLD = 0.0


def resized_shape(original_size: tuple[int, int], long_side: int = IMAGE_SIZE) -> tuple[int, int]:
    """(H, W) after scaling so that the longest side is long_side, rounded as the reference does."""
    height, width = original_size
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_image(image: np.ndarray, long_side: int = IMAGE_SIZE) -> np.ndarray:
    """Resize an (H, W, 3) uint8 RGB array with PIL's bilinear filter, longest side to long_side."""
    height, width = resized_shape(image.shape[:2], long_side)
    return np.array(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def normalize_and_pad(image: torch.Tensor, image_size: int = IMAGE_SIZE) -> torch.Tensor:
    """(B, 3, h, w) or (3, h, w) float pixels in 0..255 to normalised (..., 3, image_size,
    image_size), zero-padded at the bottom and right."""
    mean = torch.tensor(PIXEL_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=image.device).view(3, 1, 1)
    image = (image - mean) / std
    height, width = image.shape[-2:]
    return F.pad(image, (0, image_size - width, 0, image_size - height))


def transform_coords(coords: np.ndarray | torch.Tensor, original_size: tuple[int, int], long_side: int = IMAGE_SIZE):
    """Map (..., 2) xy pixel coordinates of the original image into the frame resized to long_side
    (a copy: float32 for a tensor, float64 for an array)."""
    height, width = original_size
    new_height, new_width = resized_shape(original_size, long_side)
    coords = coords.clone().float() if isinstance(coords, torch.Tensor) else np.array(coords, dtype=np.float64)
    coords[..., 0] = coords[..., 0] * (new_width / width)
    coords[..., 1] = coords[..., 1] * (new_height / height)
    return coords


def transform_boxes(boxes: np.ndarray | torch.Tensor, original_size: tuple[int, int], long_side: int = IMAGE_SIZE):
    """Map (..., 4) xyxy boxes of the original image into the frame resized to long_side, as (B, 4)."""
    return transform_coords(boxes.reshape(-1, 2, 2), original_size, long_side).reshape(-1, 4)


def postprocess_masks(
    low_res_masks: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
) -> torch.Tensor:
    """(B, M, 256, 256) logits to (B, M, H, W) logits: upscale to 1024, drop padding, resize."""
    masks = F.interpolate(low_res_masks, (IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    masks = masks[..., : input_size[0], : input_size[1]]
    return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)


def mask_in_low_res_frame(mask: np.ndarray) -> torch.Tensor:
    """An (H, W) binary mask where SAM's low-res logits are: (256, 256) bool in the padded 1024
    frame (the padding False), as SAM's mask input takes it and as fine-tuning's target."""
    height, width = mask.shape
    resized_height, resized_width = resized_shape((height, width))
    tensor = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]
    resized = F.interpolate(tensor, (resized_height, resized_width), mode="bilinear", align_corners=False)
    frame = F.pad(resized, (0, IMAGE_SIZE - resized_width, 0, IMAGE_SIZE - resized_height))
    return F.interpolate(frame, (IMAGE_SIZE // 4, IMAGE_SIZE // 4), mode="bilinear", align_corners=False)[0, 0] > 0.5


def mask_to_low_res_logits(mask: np.ndarray, strength: float = 20.0) -> np.ndarray:
    """An (H, W) binary mask as SAM's mask_input: (256, 256) logits in the padded 1024 frame, +strength
    inside the mask and -strength outside (and in the padding), for prompting with a mask from
    elsewhere (a COCO RLE, a drawing) instead of SAM's own low-res logits."""
    return (mask_in_low_res_frame(mask).float() * 2 - 1).mul(strength).numpy()
