"""Every image input becomes (H, W, 3) uint8 RGB, or a clear InvalidImageError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lang_sam import InvalidImageError
from lang_sam.io.images import load_image


def assert_rgb(array: np.ndarray, height: int, width: int) -> None:
    assert array.shape == (height, width, 3) and array.dtype == np.uint8 and array.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "CMYK", "LA", "I;16", "1"])
def test_every_pil_mode_becomes_rgb(mode, tmp_path):
    image = Image.new(mode, (30, 20))
    assert_rgb(load_image(image), 20, 30)
    suffix = ".tif" if mode == "CMYK" else ".png"
    path = tmp_path / f"image{suffix}"
    image.save(path)
    assert_rgb(load_image(path), 20, 30)


def test_sixteen_bit_values_are_scaled_not_clipped(tmp_path):
    pixels = np.full((4, 5), 65535, dtype=np.uint16)
    pixels[0, 0] = 0
    path = tmp_path / "deep.png"
    Image.fromarray(pixels).save(path)
    result = load_image(path)
    assert result[1, 1].tolist() == [255, 255, 255] and result[0, 0].tolist() == [0, 0, 0]


def test_transparent_pixels_go_on_black():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[0, 0, 3] = 255
    result = load_image(rgba)
    assert result[0, 0].tolist() == [200, 200, 200] and result[1, 1].tolist() == [0, 0, 0]


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 10), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert_rgb(load_image(path), 40, 10)


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 6), color) for color in [(255, 0, 0), (0, 0, 255)]]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    result = load_image(path)
    assert_rgb(result, 6, 8)
    assert result[0, 0, 0] > 200 and result[0, 0, 2] < 50


@pytest.mark.parametrize(
    "array",
    [np.zeros((5, 6), np.uint8), np.zeros((5, 6, 1), np.uint8), np.ones((5, 6, 3), np.float32), np.zeros((1, 6, 3), np.uint8)],
    ids=["gray", "one-channel", "float", "one-row"],
)
def test_arrays(array):
    assert_rgb(load_image(array), *array.shape[:2])


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((5, 6, 2), np.uint8), "shape"),
        (np.zeros((0, 6, 3), np.uint8), "empty"),
        (np.full((5, 6, 3), 2.0), r"\[0, 1\]"),
        (np.full((5, 6, 3), np.nan), r"\[0, 1\]"),
        (np.zeros((5, 6, 3), np.int64), "dtype"),
    ],
)
def test_bad_arrays(array, message):
    with pytest.raises(InvalidImageError, match=message):
        load_image(array)


def test_bad_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(0).bytes(2000))
    Image.new("RGB", (200, 200), (10, 20, 30)).save(tmp_path / "whole.jpg")
    (tmp_path / "truncated.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:300])
    for name in ["empty.jpg", "noise.png", "truncated.jpg"]:
        with pytest.raises(InvalidImageError, match="Could not read image"):
            load_image(tmp_path / name)
    with pytest.raises(InvalidImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InvalidImageError, match="not a file"):
        load_image(tmp_path)
    with pytest.raises(InvalidImageError, match="Expected an image path"):
        load_image(42)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (400, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400 * 300 // 4)
    with pytest.raises(InvalidImageError, match="more pixels than is safe"):
        load_image(path)


def test_bytes_and_a_pixel_limit(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="PNG")
    image = load_image(buffer.getvalue(), max_pixels=40 * 30)
    assert_rgb(image, 30, 40)
    assert tuple(image[0, 0]) == (200, 10, 10)
    for source in (buffer.getvalue(), Image.open(buffer), np.zeros((30, 40, 3), np.uint8)):
        with pytest.raises(InvalidImageError, match="40x30 pixels, more than the limit of 1000"):
            load_image(source, max_pixels=1000)
    with pytest.raises(InvalidImageError, match="Could not read the uploaded image"):
        load_image(b"GIF89a broken")


def test_non_ascii_file_name(tmp_path):
    path = tmp_path / "café_日本.png"
    Image.new("RGB", (3, 2)).save(path)
    assert_rgb(load_image(path), 2, 3)
