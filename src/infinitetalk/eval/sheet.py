"""A contact sheet: frames of a video in a grid, so a person can judge the look at a glance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from infinitetalk.errors import InvalidRequest
from infinitetalk.eval.video import iter_frames


def contact_sheet(
    video: str | Path,
    out_png: str | Path,
    *,
    frames: int = 8,
    columns: int = 4,
    width: int = 1600,
    crop: tuple[float, float, float, float] | None = None,
) -> Path:
    """Write ``frames`` evenly spaced frames of ``video`` to ``out_png`` in a grid ``width`` pixels wide.

    ``crop``: optional (x0, y0, x1, y1) as shares of the frame, to zoom on the face.
    """
    all_frames = list(iter_frames(video))
    if not all_frames:
        raise InvalidRequest(f"video: {Path(video).name} has no video frames", code="video_unreadable", field="video")
    picks = np.linspace(0, len(all_frames) - 1, frames).round().astype(int)
    tiles = []
    for i in picks:
        img = all_frames[i]
        if crop is not None:
            h, w = img.shape[:2]
            img = img[int(crop[1] * h) : int(crop[3] * h), int(crop[0] * w) : int(crop[2] * w)]
        tiles.append((int(i), Image.fromarray(img)))
    rows = -(-frames // columns)
    tile_w = width // columns
    tile_h = round(tile_w * tiles[0][1].height / tiles[0][1].width)
    sheet = Image.new("RGB", (tile_w * columns, tile_h * rows), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for k, (index, tile) in enumerate(tiles):
        x, y = (k % columns) * tile_w, (k // columns) * tile_h
        sheet.paste(tile.resize((tile_w, tile_h), Image.LANCZOS), (x, y))
        draw.text((x + 6, y + 4), f"frame {index}", fill=(255, 255, 0))
    out_png = Path(out_png)
    sheet.save(out_png, optimize=True)
    return out_png
