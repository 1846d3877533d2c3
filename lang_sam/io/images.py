"""Images in: a PIL image, an RGB array, a file path or a file's bytes, always out as (H, W, 3) uint8 RGB."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lang_sam.errors import InvalidImageError

ImageInput = Image.Image | np.ndarray | str | Path | bytes


def load_image(image: ImageInput, max_pixels: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a path, an image file's bytes, a PIL image or an array.

    EXIF orientation is applied; grayscale, RGBA (on black), palette, CMYK and 16-bit images become
    RGB; animated images give their first frame. Arrays may be (H, W), (H, W, 1), (H, W, 3) or
    (H, W, 4), uint8, or float in [0, 1]. max_pixels refuses larger images before decoding them
    (servers set it); PIL's decompression-bomb limit always applies to files.
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise InvalidImageError(f"Image {path} does not exist or is not a file.")
        return _from_pil(_open(path, f"Image {path}", max_pixels))
    if isinstance(image, bytes):
        return _from_pil(_open(io.BytesIO(image), "The uploaded image", max_pixels))
    if isinstance(image, Image.Image):
        check_size(image.size, "The image", max_pixels)
        return _from_pil(image)
    if isinstance(image, np.ndarray):
        if image.ndim >= 2:
            check_size(image.shape[1::-1], "The image array", max_pixels)
        return _from_array(image)
    raise InvalidImageError(f"Expected an image path, bytes, a PIL image or a numpy array, got {type(image).__name__}.")


def _open(source: Path | io.BytesIO, name: str, max_pixels: int | None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source)
            check_size(image.size, name, max_pixels)
            image.load()
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImageError(f"{name} declares more pixels than is safe to decode ({Image.MAX_IMAGE_PIXELS}).") from None
    except UnidentifiedImageError:
        raise InvalidImageError(f"Could not read {name[:1].lower() + name[1:]}: it is not in an image format this reads.") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidImageError(f"Could not read {name[:1].lower() + name[1:]}: it is damaged or truncated ({error}).") from None
    return image


def check_size(size: tuple[int, int], name: str, max_pixels: int | None) -> None:
    """Refuse an image of (width, height) pixels over max_pixels (None: no limit), naming it by name."""
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise InvalidImageError(f"{name} has {width}x{height} pixels, more than the limit of {max_pixels}; resize it first.")


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; as stored when the EXIF block is damaged."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError):
        return image


def _from_pil(image: Image.Image) -> np.ndarray:
    image = _upright(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if pixels.max(initial=0) > 255 else 255.0
        return _from_array((np.clip(pixels / scale, 0, 1) * 255 + 0.5).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return _from_array(np.asarray(image.convert("RGB")))


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InvalidImageError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {array.shape}.")
    if min(array.shape[:2]) < 1:
        raise InvalidImageError(f"The image is empty (shape {array.shape}).")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise InvalidImageError("A float image array must hold finite values in [0, 1].")
        array = (array * 255 + 0.5).astype(np.uint8)
    if array.dtype != np.uint8:
        raise InvalidImageError(f"Unsupported image array dtype {array.dtype}; use uint8, or float in [0, 1].")
    if array.shape[2] == 4:
        return _from_pil(Image.fromarray(array, "RGBA"))
    return np.ascontiguousarray(array)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def find_images(folder: str | Path) -> list[Path]:
    """The image files under a folder, in subfolders too, sorted by path: what `lang-sam predict`
    and `lang-sam label` read from a folder."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidImageError(f"{root} is not a folder of images.")
    return sorted(path for path in root.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
