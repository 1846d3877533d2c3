"""The bad and odd inputs of the robustness matrix, made on the fly (never copied into the repository)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from PIL import Image

from tests.detector.test_grounding_dino import ASSETS


def declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height pixels, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def write_image_cases(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Files in folder, by name: the (height, width) a reader must see, or None when it must refuse it."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.open(ASSETS / "chelsea.jpg").convert("RGB").resize((120, 80))
    whole = folder / "whole.jpg"
    photo.save(whole)
    cases: dict[str, tuple[int, int] | None] = {}

    def save(name: str, image: Image.Image, expected, **options) -> None:
        image.save(folder / name, **options)
        cases[name] = expected

    (folder / "truncated.jpg").write_bytes(whole.read_bytes()[:700])
    cases["truncated.jpg"] = None
    (folder / "random-bytes.png").write_bytes(bytes(range(256)) * 8)
    cases["random-bytes.png"] = None
    (folder / "zero-bytes.jpg").write_bytes(b"")
    cases["zero-bytes.jpg"] = None
    (folder / "bomb.png").write_bytes(declared_png(16384, 16384))
    cases["bomb.png"] = None
    save("one-pixel.png", photo.resize((1, 1)), (1, 1))
    save("one-row.png", photo.resize((97, 1)), (1, 97))
    save("one-column.png", photo.resize((1, 61)), (61, 1))
    save("grayscale.png", photo.convert("L"), (80, 120))
    save("rgba.png", photo.convert("RGBA"), (80, 120))
    save("cmyk.jpg", photo.convert("CMYK"), (80, 120))
    save("palette.png", photo.convert("P"), (80, 120))
    save("sixteen-bit.png", photo.convert("L").point(lambda v: v * 256, "I").convert("I;16"), (80, 120))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    save("exif-rotated.jpg", photo, (120, 80), exif=exif)
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    save("animated.gif", frames[0], (80, 120), save_all=True, append_images=frames[1:], duration=100, loop=0)
    save("café-日本語.png", photo, (80, 120))
    whole.unlink()
    return cases
