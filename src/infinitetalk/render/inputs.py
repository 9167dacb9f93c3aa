"""From a GenerationRequest to an EngineJob: fetch, decode, check and lay out the inputs.

Everything an engine receives is already at the output size and on the output timeline:
the portrait (or the source video, frame by frame) is cover-cropped to its bucket, masks
and boxes are moved with it, and each speaker's track is placed per the audio layout and
padded to the video's length. Masks and boxes are given in the source's pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from scipy.signal import resample_poly

from infinitetalk.config import Settings
from infinitetalk.engines.base import AUDIO_SAMPLE_RATE, EngineJob, Speaker
from infinitetalk.errors import InvalidRequest
from infinitetalk.media.audio import decode_audio
from infinitetalk.media.fetch import fetch_to_file
from infinitetalk.media.image import cover_crop, cover_crop_box, decode_image
from infinitetalk.media.video import first_frame, prefetched, timeline_frames
from infinitetalk.schema import AudioLayout, BBox, GenerationRequest, Mode
from infinitetalk.schema.buckets import output_size

#: The soundtrack of the output video keeps this rate (speech needs no more).
SOUNDTRACK_RATE = 44_100


@dataclass
class PreparedJob:
    job: EngineJob
    #: float32 mono at SOUNDTRACK_RATE: the mix of all speakers, as long as the speech.
    soundtrack: np.ndarray

    @property
    def duration_s(self) -> float:
        return len(self.soundtrack) / SOUNDTRACK_RATE


def prepare(request: GenerationRequest, workdir: Path, *, settings: Settings, allow_local_paths: bool) -> PreparedJob:
    fetch = partial(fetch_to_file, dest_dir=workdir, settings=settings, allow_local_paths=allow_local_paths)
    many = request.speakers > 1

    # 1. Speech: decode each track once at the soundtrack rate, lay the tracks out in time.
    tracks = [
        decode_audio(fetch(ref, kind="audio", field=f"audio[{i}]" if many else "audio"), sample_rate=SOUNDTRACK_RATE,
                     field=f"audio[{i}]" if many else "audio")
        for i, ref in enumerate(request.audio)
    ]
    tracks = lay_out(tracks, request.audio_layout)
    soundtrack = np.clip(np.sum(tracks, axis=0), -1.0, 1.0).astype(np.float32)
    num_frames = max(1, round(len(soundtrack) / SOUNDTRACK_RATE * request.fps))
    engine_samples = round(num_frames * AUDIO_SAMPLE_RATE / request.fps)
    speech = [_fit(resample_poly(t, 160, 441).astype(np.float32), engine_samples) for t in tracks]

    # 2. Picture: decode, pick the bucket, cover-crop; masks and boxes follow the crop.
    picture = prepare_picture(request, fetch)
    width, height = picture.width, picture.height
    video_frames = None
    if picture.video_path is not None:
        # a partial of a module function, not a closure: a job shared by the ranks of a --gpus run is pickled
        video_frames = partial(_source_frames, picture.video_path, fps=request.fps, num_frames=num_frames,
                               width=width, height=height)

    job = EngineJob(
        mode=request.mode,
        speakers=[Speaker(audio=a, mask=m, bbox=b) for a, m, b in zip(speech, picture.masks, picture.boxes,
                                                                         strict=True)],
        width=width,
        height=height,
        fps=request.fps,
        num_frames=num_frames,
        seed=request.resolved_seed(),
        image=picture.image,
        video_frames=video_frames,
        prompt=request.prompt,
        # engines that have no faster mode ignore it (preview, instant)
        extras={"sampling": request.sampling.value},
    )
    return PreparedJob(job=job, soundtrack=soundtrack)


@dataclass
class Picture:
    """The first picture at the output size, with each speaker's mask and box moved onto it."""

    image: np.ndarray
    width: int
    height: int
    masks: list[np.ndarray | None]
    boxes: list[BBox | None]
    #: the source video (video-to-video), whose first frame ``image`` is
    video_path: Path | None


def prepare_picture(request: GenerationRequest, fetch: Callable[..., Path]) -> Picture:
    """Decode the portrait (or the video's first frame), pick the bucket, cover-crop; masks and boxes follow
    the crop. What the engine sees, and what the submit's face check looks at."""
    video_path: Path | None = None
    if request.mode is Mode.VIDEO_TO_VIDEO:
        assert request.video is not None
        video_path = fetch(request.video, kind="video", field="video")
        source = first_frame(video_path)
    else:
        assert request.image is not None
        source = decode_image(fetch(request.image, kind="image", field="image"), field="image")
    src_h, src_w = source.shape[:2]
    width, height = output_size(src_w, src_h, request.resolution)
    masks: list[np.ndarray | None] = [None] * request.speakers
    if request.mask:
        masks = [
            _load_mask(fetch(ref, kind="image", field=f"mask[{i}]"), (src_w, src_h), (width, height), f"mask[{i}]")
            for i, ref in enumerate(request.mask)
        ]
    boxes: list[BBox | None] = [None] * request.speakers
    if request.bbox:
        boxes = [_move_box(b, (src_w, src_h), (width, height), f"bbox[{i}]") for i, b in enumerate(request.bbox)]
    return Picture(image=cover_crop(source, width, height), width=width, height=height, masks=masks, boxes=boxes,
                   video_path=video_path)


def _source_frames(path: Path, **timeline: int) -> Iterator[np.ndarray]:
    """The source video's frames on the output timeline, decoded ahead of the engine on a thread."""
    return prefetched(timeline_frames(path, **timeline))


def lay_out(tracks: list[np.ndarray], layout: AudioLayout) -> list[np.ndarray]:
    """Place tracks on one timeline: together from 0 (para) or one after another (add)."""
    if layout is AudioLayout.ADD:
        starts = np.cumsum([0] + [len(t) for t in tracks[:-1]])
    else:
        starts = [0] * len(tracks)
    total = max(s + len(t) for s, t in zip(starts, tracks, strict=True))
    out = []
    for start, track in zip(starts, tracks, strict=True):
        placed = np.zeros(total, dtype=np.float32)
        placed[start : start + len(track)] = track
        out.append(placed)
    return out


def _fit(track: np.ndarray, samples: int) -> np.ndarray:
    if len(track) >= samples:
        return track[:samples]
    return np.pad(track, (0, samples - len(track)))


def _load_mask(path: Path, source_size: tuple[int, int], out_size: tuple[int, int], field: str) -> np.ndarray:
    """A mask must have the source image's size, or at least its aspect ratio (then it is resized)."""
    mask = decode_image(path, field=field, mode="L")
    src_w, src_h = source_size
    h, w = mask.shape
    if (w, h) != (src_w, src_h):
        if abs(w / h - src_w / src_h) > 0.01:
            raise InvalidRequest(
                f"{field}: the mask is {w}x{h} but the image is {src_w}x{src_h}; "
                "give a mask of the image's size (or at least its aspect ratio)",
                code="mask_size_mismatch",
                field=field,
            )
        mask = cv2.resize(mask, (src_w, src_h), interpolation=cv2.INTER_NEAREST)
    if not mask.any():
        raise InvalidRequest(f"{field}: the mask is all black; paint the face to animate white", field=field)
    return cover_crop(mask, *out_size)


def _move_box(box: BBox, source_size: tuple[int, int], out_size: tuple[int, int], field: str) -> BBox:
    src_w, src_h = source_size
    if box.x0 < 0 or box.y0 < 0 or box.x1 > src_w or box.y1 > src_h:
        raise InvalidRequest(
            f"{field}: box {box.x0:g},{box.y0:g},{box.x1:g},{box.y1:g} is outside the {src_w}x{src_h} image",
            code="bbox_outside_image",
            field=field,
        )
    scale, dx, dy = cover_crop_box(src_w, src_h, *out_size)
    return BBox(x0=box.x0 * scale - dx, y0=box.y0 * scale - dy, x1=box.x1 * scale - dx, y1=box.y1 * scale - dy)
