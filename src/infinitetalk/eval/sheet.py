"""A contact sheet: frames of a video in a grid, so a person can judge the look at a glance.

With ``marks``, each frame's label says whether it falls in silence or in a blink (and of which
eye), and a strip under the grid draws the whole video's timeline: where the speech is, the
mouth's aperture, each eye's blinks, and where the frames shown come from.
"""

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
    marks: bool = False,
    picks: list[int] | None = None,
) -> Path:
    """Write ``frames`` evenly spaced frames of ``video`` to ``out_png`` in a grid ``width`` pixels wide.

    ``crop``: optional (x0, y0, x1, y1) as shares of the frame, to zoom on the face. ``marks``: label
    silence and blinks, and draw the timeline strip (measured with the face mesh and a voice-activity
    model: seconds more). ``picks``: these frame indices instead of evenly spaced ones.
    """
    all_frames = list(iter_frames(video))
    if not all_frames:
        raise InvalidRequest(f"video: {Path(video).name} has no video frames", code="video_unreadable", field="video")
    if picks is not None:
        picks = np.clip(np.asarray(picks, dtype=int), 0, len(all_frames) - 1)
        frames = len(picks)
    else:
        picks = np.linspace(0, len(all_frames) - 1, frames).round().astype(int)
    timeline = _Timeline.measure(video) if marks else None
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
    strip_h = STRIP_HEIGHT if timeline is not None else 0
    sheet = Image.new("RGB", (tile_w * columns, tile_h * rows + strip_h), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for k, (index, tile) in enumerate(tiles):
        x, y = (k % columns) * tile_w, (k // columns) * tile_h
        sheet.paste(tile.resize((tile_w, tile_h), Image.LANCZOS), (x, y))
        label = f"frame {index}" + (timeline.label(index) if timeline is not None else "")
        draw.text((x + 6, y + 4), label, fill=(255, 255, 0))
    if timeline is not None:
        timeline.draw(draw, (0, tile_h * rows, tile_w * columns, tile_h * rows + strip_h), [int(i) for i in picks])
    out_png = Path(out_png)
    sheet.save(out_png, optimize=True)
    return out_png


#: Pixels of the timeline strip under a marked sheet.
STRIP_HEIGHT = 90
_SPEECH, _MOUTH, _SHOWN = (70, 70, 86), (240, 240, 240), (255, 255, 0)
_LEFT_EYE, _RIGHT_EYE = (80, 220, 255), (255, 90, 200)


class _Timeline:
    """What :func:`contact_sheet` marks: speech per frame, the mouth's aperture, and each eye's blinks."""

    def __init__(self, speech: np.ndarray, aperture: np.ndarray, left: np.ndarray, right: np.ndarray,
                 found_by: str) -> None:
        self.speech, self.aperture, self.left, self.right, self.found_by = speech, aperture, left, right, found_by

    @classmethod
    def measure(cls, video: str | Path) -> _Timeline:
        from infinitetalk.eval.behaviour import blinks, silent_mouth
        from infinitetalk.eval.sync import measure_face
        from infinitetalk.eval.video import video_fps
        from infinitetalk.media.audio import decode_audio

        aperture, _, eyes_open = measure_face(video, lids=True)
        found = blinks(eyes_open)
        quiet = silent_mouth(aperture, decode_audio(video, sample_rate=16_000), video_fps(video))
        return cls(quiet.speech, aperture, found.left, found.right, quiet.found_by)

    def label(self, index: int) -> str:
        near = [side for side, frames in (("left", self.left), ("right", self.right))
                if len(frames) and np.abs(frames - index).min() <= 1]
        blink = ", blink" if len(near) == 2 else f", blink ({near[0]} eye only)" if near else ""
        return ("" if self.speech[index] else ", silence") + blink

    def draw(self, draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], shown: list[int]) -> None:
        x0, y0, x1, y1 = box
        count = len(self.speech)
        span = max(count - 1, 1)

        def x_of(frame: float) -> float:
            return x0 + 8 + (x1 - x0 - 16) * frame / span

        top, bottom = y0 + 22, y1 - 20
        for frame in np.flatnonzero(self.speech):  # speech as a band behind the curve
            draw.rectangle((x_of(frame - 0.5), top, x_of(frame + 0.5), bottom), fill=_SPEECH)
        ok = np.isfinite(self.aperture)
        if ok.any():
            peak = max(float(np.nanmax(self.aperture)), 1e-6)
            points = [(x_of(i), bottom - (bottom - top) * float(a) / peak)
                      for i, a in enumerate(self.aperture) if ok[i]]
            if len(points) >= 2:
                draw.line(points, fill=_MOUTH, width=1)
        for frames, colour, y in ((self.left, _LEFT_EYE, top - 8), (self.right, _RIGHT_EYE, top - 3)):
            for frame in frames:
                draw.line((x_of(frame), y, x_of(frame), y + 4), fill=colour, width=3)
        for frame in shown:
            draw.line((x_of(frame), bottom + 2, x_of(frame), bottom + 7), fill=_SHOWN, width=2)
        draw.text((x0 + 8, y0 + 2), "blinks: eye on the left", fill=_LEFT_EYE)
        draw.text((x0 + 150, y0 + 2), "on the right", fill=_RIGHT_EYE)
        draw.text((x0 + 240, y0 + 2), f"mouth aperture over speech (grey; found by {self.found_by.split(' (')[0]})",
                  fill=_MOUTH)
        draw.text((x0 + 8, bottom + 8), "frames shown above", fill=_SHOWN)
