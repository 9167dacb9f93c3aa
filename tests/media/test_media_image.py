"""Image decoding: formats, EXIF orientation, bombs, non-images; and the cover crop."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infinitetalk.errors import InputTooLarge, InvalidRequest
from infinitetalk.media.image import check_image, cover_crop, cover_crop_box, decode_image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accepted_formats(grace_hopper_path: Path, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"portrait.{fmt.lower()}"
    Image.open(grace_hopper_path).save(path, format=fmt)
    image = decode_image(path)
    assert image.shape == (600, 512, 3) and image.dtype == np.uint8


def test_exif_orientation_is_honoured(grace_hopper_path: Path, tmp_path: Path) -> None:
    img = Image.open(grace_hopper_path)
    exif = img.getexif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    path = tmp_path / "sideways.jpg"
    img.save(path, exif=exif)
    assert decode_image(path).shape == (512, 600, 3)


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (10_000, 5_000)).save(path)  # tiny file, 50 megapixels
    assert path.stat().st_size < 200_000
    with pytest.raises(InputTooLarge) as info:
        decode_image(path)
    assert info.value.code == "image_too_large"


@pytest.mark.parametrize(("name", "content"), [("notes.png", b"hello, not a picture"), ("empty.jpg", b"")])
def test_non_images_are_refused(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidRequest) as info:
        decode_image(path)
    assert info.value.code == "image_unreadable" and "PNG, JPEG or WebP" in info.value.message


def test_other_image_formats_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    Image.new("RGB", (32, 32)).save(path)
    with pytest.raises(InvalidRequest, match="GIF images are not accepted"):
        decode_image(path)


def test_cover_crop_fills_and_centres() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 90:110] = 255  # a white bar in the middle
    out = cover_crop(image, 64, 64)
    assert out.shape == (64, 64, 3)
    assert out[:, 32].mean() > 200 and out[:, 0].mean() < 10
    scale, dx, dy = cover_crop_box(200, 100, 64, 64)
    assert (scale, dx, dy) == (0.64, 32, 0)


def png_header(path: Path, width: int, height: int) -> Path:
    """A valid PNG that claims width x height 1-bit pixels and holds one row: a bomb's header, bytes small."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + width // 8))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_gigapixel_bomb_is_refused_as_too_large(tmp_path: Path) -> None:
    # 1.6 gigapixels: Pillow itself refuses it before our own cap sees the size
    path = png_header(tmp_path / "bomb.png", 40_000, 40_000)
    with pytest.raises(InputTooLarge) as info:
        decode_image(path)
    assert info.value.code == "image_too_large" and info.value.field == "image"
    assert "megapixel limit" in info.value.message


def test_check_decodes_the_whole_image(grace_hopper_path: Path, tmp_path: Path) -> None:
    assert check_image(grace_hopper_path) == (512, 600)
    cut = tmp_path / "image-x7q2.jpg"  # what a server names a fetched input
    cut.write_bytes(grace_hopper_path.read_bytes()[:3000])  # the header reads, the pixels stop short
    with pytest.raises(InvalidRequest) as info:
        check_image(cut, field="mask.0", mode="L")
    assert info.value.code == "image_unreadable" and info.value.field == "mask.0"
    assert info.value.message.startswith("mask.0: ") and "x7q2" not in info.value.message
