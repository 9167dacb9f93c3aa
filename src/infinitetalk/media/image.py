"""Images: decode portraits and masks, honour EXIF orientation, refuse bombs and non-images."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from infinitetalk.errors import InputTooLarge, InvalidRequest
from infinitetalk.schema import limits

#: MPO is how Pillow names the multi-picture JPEGs many phones write.
FORMATS = {"PNG", "JPEG", "MPO", "WEBP"}


def decode_image(path: str | Path, *, field: str = "image", mode: str = "RGB") -> np.ndarray:
    """Decode an image file to uint8 (HxWx3 for RGB, HxW for L), upright per its EXIF tag."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Our own pixel cap below is stricter; Pillow's bomb warning adds nothing.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.format not in FORMATS:
                    raise InvalidRequest(
                        f"{field}: {img.format} images are not accepted; send PNG, JPEG or WebP",
                        code="image_unreadable",
                        field=field,
                    )
                width, height = img.size
                if width * height > limits.MAX_IMAGE_PIXELS:
                    raise _too_many_pixels(field, f"{width}x{height} pixels")
                img = ImageOps.exif_transpose(img)
                return np.asarray(img.convert(mode)).copy()
    except Image.DecompressionBombError:
        # Pillow refuses far bigger headers (its own cap, 2x ~89 MP) before we see the size.
        raise _too_many_pixels(field, "the image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise InvalidRequest(
            f"{field}: the file is not a readable image (not a picture, a damaged one, or cut short); "
            "send PNG, JPEG or WebP",
            code="image_unreadable",
            field=field,
        ) from None


def check_image(path: str | Path, *, field: str = "image", mode: str = "RGB") -> tuple[int, int]:
    """Decode the whole image once, as a render would, and return its upright (width, height).

    For the submit path: a file that would fail the render is refused while the caller is still
    there to be told, before anything is stored or charged. The pixel cap bounds the cost. ``mode`` is
    the one the render asks for (RGB for a portrait, L for a mask), so the check cannot pass what it fails.
    """
    pixels = decode_image(path, field=field, mode=mode)
    height, width = pixels.shape[:2]
    return width, height


def _too_many_pixels(field: str, what: str) -> InputTooLarge:
    return InputTooLarge(
        f"{field}: {what} is over the {limits.MAX_IMAGE_PIXELS // 1_000_000} megapixel limit; downscale the image",
        code="image_too_large",
        field=field,
    )


def cover_crop(image: np.ndarray, width: int, height: int, *, fast: bool = False) -> np.ndarray:
    """Resize ``image`` to cover width x height, then centre-crop to exactly that size.

    ``fast``: bilinear instead of area/bicubic, for video frames where it is paid per frame.
    """
    src_h, src_w = image.shape[:2]
    if (src_w, src_h) == (width, height):
        return image
    scale = max(width / src_w, height / src_h)
    new_w, new_h = max(width, round(src_w * scale)), max(height, round(src_h * scale))
    if fast:
        interpolation = cv2.INTER_LINEAR
    else:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    x0, y0 = (new_w - width) // 2, (new_h - height) // 2
    return np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width])


def cover_crop_box(src_w: int, src_h: int, width: int, height: int) -> tuple[float, float, float]:
    """(scale, x_offset, y_offset) that map source pixels to cover-cropped output pixels.

    out = src * scale - offset. For moving boxes and masks along with the image.
    """
    scale = max(width / src_w, height / src_h)
    new_w, new_h = max(width, round(src_w * scale)), max(height, round(src_h * scale))
    return scale, (new_w - width) // 2, (new_h - height) // 2
