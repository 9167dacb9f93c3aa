"""The MP4 writer: streams, faststart, atomic output."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from infinitetalk.errors import InvalidRequest
from infinitetalk.media.video import Mp4Writer, check_video, iter_frames, timeline_frames, video_duration


def frames(n: int, h: int = 64, w: int = 96):
    for i in range(n):
        frame = np.full((h, w, 3), 40, np.uint8)
        frame[:, (i * 3) % w] = 250
        yield frame


def test_writes_h264_aac_faststart(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    audio = (0.2 * np.sin(np.arange(44_100 * 2) / 20)).astype(np.float32)
    with Mp4Writer(out, width=96, height=64, fps=25, audio=audio) as writer:
        for frame in frames(50):
            writer.write(frame)
    with av.open(str(out)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
        assert (video.codec_context.width, video.codec_context.height) == (96, 64)
        assert float(video.average_rate) == 25
        assert sound.codec_context.name == "aac"
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "moov atom must come first (faststart)"
    assert sum(1 for _ in iter_frames(out)) == 50
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temporary file's 0600


def test_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError), Mp4Writer(out, width=96, height=64, fps=25) as writer:
        for i, frame in enumerate(frames(10)):
            writer.write(frame)
            if i == 5:
                raise RuntimeError("engine broke")
    assert list(tmp_path.iterdir()) == []


def test_refuses_odd_sizes_and_wrong_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        Mp4Writer(tmp_path / "x.mp4", width=95, height=64, fps=25)
    with pytest.raises(ValueError, match="expected uint8"), Mp4Writer(tmp_path / "y.mp4", width=96, height=64,
                                                                      fps=25) as writer:
        writer.write(np.zeros((64, 64, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def numbered_source(path: Path, *, frames: int, fps: int) -> Path:
    """A source video whose frame i is a flat grey of level 4*i, so order can be read back."""
    with Mp4Writer(path, width=64, height=48, fps=fps) as writer:
        for i in range(frames):
            writer.write(np.full((48, 64, 3), 4 * i, np.uint8))
    return path


def levels(frames_: list[np.ndarray]) -> list[int]:
    return [round(float(f.mean()) / 4) for f in frames_]


def test_timeline_converts_rate_and_cuts(tmp_path: Path) -> None:
    source = numbered_source(tmp_path / "src.mp4", frames=60, fps=30)
    assert video_duration(source) == pytest.approx(2.0)
    out = list(timeline_frames(source, fps=25, num_frames=25, width=64, height=48))
    got = levels(out)
    assert len(out) == 25 and got[0] == 0 and got[-1] == 28  # 0.96 s in at 30 fps: frame 28 shows from 0.933 s
    assert all(b >= a for a, b in zip(got, got[1:], strict=False))


def test_timeline_ping_pongs_past_the_end(tmp_path: Path) -> None:
    source = numbered_source(tmp_path / "src.mp4", frames=20, fps=25)
    got = levels(list(timeline_frames(source, fps=25, num_frames=50, width=64, height=48)))
    assert got[:20] == list(range(20))
    assert got[20:39] == list(range(18, -1, -1))  # back down, no jump
    assert got[39:] == list(range(1, 12))


def test_timeline_crops_to_the_output_size(tmp_path: Path) -> None:
    source = numbered_source(tmp_path / "src.mp4", frames=5, fps=25)
    out = list(timeline_frames(source, fps=25, num_frames=5, width=32, height=32))
    assert {f.shape for f in out} == {(32, 32, 3)}


def test_audio_only_file_is_not_a_video(speech_wav: Path) -> None:
    with pytest.raises(InvalidRequest) as info:
        video_duration(speech_wav)
    assert info.value.code == "video_unreadable"


def test_check_opens_and_decodes_the_first_frame(tmp_path: Path, speech_wav: Path) -> None:
    good = tmp_path / "clip.mp4"
    with Mp4Writer(good, width=96, height=64, fps=25) as writer:
        for frame in frames(10):
            writer.write(frame)
    assert check_video(good) == (96, 64)
    text = tmp_path / "video-ab12cd"
    text.write_bytes(b"not a video, only words\n" * 50)
    for bad in (text, speech_wav):
        with pytest.raises(InvalidRequest) as info:
            check_video(bad)
        assert info.value.code == "video_unreadable" and info.value.field == "video"
        assert info.value.message.startswith("video: ") and str(tmp_path) not in info.value.message


#: Flat colours that matter in our videos: a lip red, the mouth's dark red-brown inside, a skin tone, grey.
FLAT_COLOURS = ((200, 60, 40), (70, 25, 20), (225, 170, 140), (128, 128, 128))


def bt709_limited_yuv(rgb: tuple[int, int, int]) -> np.ndarray:
    """Y'CbCr of an R'G'B' colour by the BT.709 matrix in limited range (ITU-R BT.709-6, table 3)."""
    red, green, blue = np.asarray(rgb, float) / 255
    kr, kb = 0.2126, 0.0722
    luma = kr * red + (1 - kr - kb) * green + kb * blue
    return np.array([16 + 219 * luma, 128 + 224 * (blue - luma) / (2 - 2 * kb), 128 + 224 * (red - luma) / (2 - 2 * kr)])


def stored_mean(plane: av.video.plane.VideoPlane) -> float:
    """The mean of a plane's samples, without the padding at the end of each line."""
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return float(rows[:, : plane.width].mean())


def written_yuv(path: Path) -> tuple[av.video.codeccontext.VideoCodecContext, list[np.ndarray]]:
    """The stream's colour tags as its decoder reads them, and each frame's mean Y, Cb, Cr as stored."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        means = [np.array([stored_mean(plane) for plane in frame.planes])
                 for frame in container.decode(stream)]
        return stream.codec_context, means


def test_mp4_is_tagged_with_the_colour_its_pixels_were_converted_with(tmp_path: Path) -> None:
    out = tmp_path / "flat.mp4"
    with Mp4Writer(out, width=64, height=48, fps=25) as writer:
        for colour in FLAT_COLOURS:
            writer.write(np.full((48, 64, 3), colour, np.uint8))
    codec, means = written_yuv(out)
    # H.273 code points: BT.709 primaries, transfer and matrix, limited range.
    assert (codec.color_primaries, codec.color_trc, codec.colorspace, codec.color_range) == (1, 1, 1, 1)
    data = out.read_bytes()
    assert b"colrnclx\x00\x01\x00\x01\x00\x01\x00" in data, "the MP4 colr atom must say the same as the stream"
    for colour, got in zip(FLAT_COLOURS, means, strict=True):
        # Within 1.5 levels: x264 at crf 20 keeps a flat frame nearly exact; BT.601's matrix would be
        # ~10 levels off in Y for the lip red, so a conversion that disagrees with the tags fails here.
        assert np.abs(got - bt709_limited_yuv(colour)).max() < 1.5, (colour, got, bt709_limited_yuv(colour))
    decoded = [frame[24, 32] for _, frame in iter_frames(out)]
    for colour, pixel in zip(FLAT_COLOURS, decoded, strict=True):
        assert np.abs(pixel.astype(int) - colour).max() <= 3, "read back through its tags, the colour is kept"
