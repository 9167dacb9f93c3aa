"""From request to EngineJob: layout of speakers in time, masks and boxes, frame counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infinitetalk.config import Settings
from infinitetalk.errors import InvalidRequest
from infinitetalk.media.audio import probe_duration
from infinitetalk.media.video import Mp4Writer
from infinitetalk.render.inputs import lay_out, prepare
from infinitetalk.schema import AudioLayout, GenerationRequest

SETTINGS = Settings()


def make(request: dict, tmp_path: Path):
    return prepare(GenerationRequest.parse(request), tmp_path, settings=SETTINGS, allow_local_paths=True)


def test_one_speaker_frames_follow_the_audio(grace_hopper_path: Path, speech_wav: Path, tmp_path: Path) -> None:
    prepared = make({"image": str(grace_hopper_path), "audio": str(speech_wav), "fps": 30, "seed": 5}, tmp_path)
    job = prepared.job
    seconds = probe_duration(speech_wav)
    assert abs(job.num_frames / 30 - seconds) <= 1 / 30
    assert len(job.speakers[0].audio) == round(job.num_frames * 16_000 / 30)
    assert job.image.shape == (job.height, job.width, 3) and job.seed == 5
    assert prepared.duration_s == pytest.approx(seconds, abs=0.01)


def test_layouts() -> None:
    a, b = np.ones(3, np.float32), np.full(2, 2, np.float32)
    assert [t.tolist() for t in lay_out([a, b], AudioLayout.PARA)] == [[1, 1, 1], [2, 2, 0]]
    assert [t.tolist() for t in lay_out([a, b], AudioLayout.ADD)] == [[1, 1, 1, 0, 0], [0, 0, 0, 2, 2]]


def test_two_speakers_in_turn(grace_hopper_path: Path, speech_wav: Path, short_speech_wav: Path,
                              tmp_path: Path) -> None:
    request = {"image": str(grace_hopper_path), "audio": [str(speech_wav), str(short_speech_wav)],
               "audio_layout": "add"}
    prepared = make(request, tmp_path)
    total = probe_duration(speech_wav) + probe_duration(short_speech_wav)
    assert prepared.duration_s == pytest.approx(total, abs=0.02)
    first, second = (s.audio for s in prepared.job.speakers)
    split = int(probe_duration(speech_wav) * 16_000)
    assert np.abs(first[split + 1600 :]).max() == 0 and np.abs(second[: split - 1600]).max() == 0


def test_mask_follows_the_crop(grace_hopper_path: Path, speech_wav: Path, tmp_path: Path) -> None:
    mask = np.zeros((300, 256), np.uint8)  # half the image's size, same aspect ratio: resized
    mask[50:150, 64:192] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    job = make({"image": str(grace_hopper_path), "audio": str(speech_wav), "mask": str(tmp_path / "mask.png")},
               tmp_path).job
    got = job.speakers[0].mask
    assert got.shape == (job.height, job.width)
    ys, xs = np.nonzero(got)
    assert abs(xs.mean() - job.width / 2) < 4 and ys.mean() < job.height / 2


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"bbox": [{"x0": 0, "y0": 0, "x1": 900, "y1": 100}]}, "bbox_outside_image"),
        ({"mask": "WRONG_MASK"}, "mask_size_mismatch"),
    ],
)
def test_bad_boxes_and_masks(grace_hopper_path: Path, speech_wav: Path, tmp_path: Path, extra: dict,
                             code: str) -> None:
    Image.fromarray(np.full((100, 400), 255, np.uint8)).save(tmp_path / "wide.png")
    if extra.get("mask") == "WRONG_MASK":
        extra = {"mask": str(tmp_path / "wide.png")}
    with pytest.raises(InvalidRequest) as info:
        make({"image": str(grace_hopper_path), "audio": str(speech_wav), **extra}, tmp_path)
    assert info.value.code == code


def test_video_to_video_job(speech_wav: Path, tmp_path: Path) -> None:
    source = tmp_path / "src.mp4"
    with Mp4Writer(source, width=320, height=240, fps=30) as writer:
        for i in range(45):
            writer.write(np.full((240, 320, 3), i * 5, np.uint8))
    job = make({"mode": "video-to-video", "video": str(source), "audio": str(speech_wav)}, tmp_path).job
    assert job.width > job.height and job.video_frames is not None
    frames = list(job.video_frames())
    assert len(frames) == job.num_frames and frames[0].shape == (job.height, job.width, 3)


def test_video_without_video_stream(speech_wav: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest) as info:
        make({"mode": "video-to-video", "video": str(speech_wav), "audio": str(speech_wav)}, tmp_path)
    assert info.value.code == "video_unreadable" and info.value.field == "video"
