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
        with Image.open(path) as img:
            if img.format not in FORMATS:
                raise InvalidRequest(
                    f"{field}: {img.format} images are not accepted; send PNG, JPEG or WebP",
                    code="image_unreadable",
                    field=field,
                )
            width, height = img.size
            if width * height > limits.MAX_IMAGE_PIXELS:
                raise InputTooLarge(
                    f"{field}: {width}x{height} pixels is over the {limits.MAX_IMAGE_PIXELS // 1_000_000} "
                    "megapixel limit; downscale the image",
                    code="image_too_large",
                    field=field,
                )
            with warnings.catch_warnings():
                # Our own pixel cap above is stricter; Pillow's bomb warning adds nothing.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = ImageOps.exif_transpose(img)
                return np.asarray(img.convert(mode)).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidRequest(
            f"{field}: {path.name} is not a readable image ({exc.__class__.__name__}); send PNG, JPEG or WebP",
            code="image_unreadable",
            field=field,
        ) from None


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
