"""HLS segments written independently, played one after another, and joined into one MP4."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from infinitetalk.media.segments import (
    AAC_FRAME,
    TS_OFFSET,
    AacTrack,
    SegmentInfo,
    hls_playlist,
    join_segments,
    write_segment,
)

FPS, RATE = 25, 44_100
#: The neural engine's chunks: 81 frames first, then 72; the last one short.
CHUNKS = (81, 72, 72, 19)
FRAMES = sum(CHUNKS)


def soundtrack(samples: int, channels: int = 1) -> np.ndarray:
    """A rising chirp over a steady tone: a gap, an overlap or a shift of one sample at a join puts
    the chirp out of phase there, and the tone makes a click stand out."""
    t = np.arange(samples) / RATE
    mono = 0.25 * np.sin(2 * np.pi * (150 * t + 120 * t * t)) + 0.1 * np.sin(2 * np.pi * 440 * t)
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono, -0.5 * mono], axis=1).astype(np.float32)


def picture(index: int, height: int = 96, width: int = 128) -> np.ndarray:
    frame = np.full((height, width, 3), (index * 9) % 200, np.uint8)
    frame[:, (index * 5) % width] = 255
    frame[(index * 3) % height, :, 1] = 30
    return frame


def write_all(folder: Path, track: AacTrack | None, chunks: tuple[int, ...] = CHUNKS) -> list[SegmentInfo]:
    infos, start = [], 0
    for number, size in enumerate(chunks):
        frames = np.stack([picture(i) for i in range(start, start + size)])
        infos.append(write_segment(folder / f"seg{number:05d}.ts", frames, start_frame=start, fps=FPS,
                                   audio=track, last=number == len(chunks) - 1))
        start += size
    return infos


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, AacTrack, list[Path], Path]:
    """The soundtrack (a little shorter than the video, as a render's is), its segments and their join."""
    folder = tmp_path_factory.mktemp("segments")
    pcm = soundtrack(FRAMES * RATE // FPS - 300)
    track = AacTrack.encode(pcm, RATE)
    paths = [folder / info.name for info in write_all(folder, track)]
    return pcm, track, paths, join_segments(paths, folder / "joined.mp4")


def decode_like_a_player(paths: list[Path]) -> tuple[np.ndarray, int]:
    """Each file demuxed on its own, in order, through one AAC decoder (what hls.js, Safari and
    ffplay do: AAC frames overlap, so a decoder is never restarted between segments).
    Returns the PCM and the stamp of its first sample, in samples."""
    decoder = av.CodecContext.create("aac", "r")
    pcm, first = [], None
    for path in paths:
        with av.open(str(path)) as container:
            for packet in container.demux(container.streams.audio[0]):
                if not packet.size:
                    continue  # the end of this file, not of the stream: no flush between segments
                if first is None:
                    first = round((packet.pts - TS_OFFSET) * packet.time_base * RATE)
                pcm += [frame.to_ndarray()[0] for frame in decoder.decode(packet)]
    pcm += [frame.to_ndarray()[0] for frame in decoder.decode(None)]
    assert first is not None
    return np.concatenate(pcm), first


def decoded_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([frame.to_ndarray()[0] for frame in container.decode(audio=0)])


def decoded_video(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def snr_db(reference: np.ndarray, signal: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - signal) ** 2)))


def test_audio_played_across_segments_and_joined_equals_the_input(rendered) -> None:
    pcm, track, paths, joined = rendered
    played, first = decode_like_a_player(paths)
    # The stated alignment: the priming frame is stamped -1024, so output sample p is input sample p.
    assert first == -track.priming == -AAC_FRAME
    played = played[track.priming :]
    mp4 = decoded_audio(joined)
    # The MP4's edit list hides the priming, and it holds the very same packets.
    np.testing.assert_array_equal(mp4[: len(played)], played[: len(mp4)])
    for audio in (played, mp4):
        # The TS cannot say where the last frame's padding starts: at most one frame too many, never fewer.
        assert len(pcm) <= len(audio) < len(pcm) + AAC_FRAME
        assert snr_db(pcm, audio[: len(pcm)]) > 25
        start = 0
        for size in CHUNKS[:-1]:
            start += size
            join = start * RATE // FPS
            window = slice(join - 2 * AAC_FRAME, join + 2 * AAC_FRAME)
            assert snr_db(pcm[window], audio[window]) > 25, f"gap, overlap or click at frame {start}"
            # A click: a jump between neighbouring samples far beyond what the signal itself does.
            assert np.abs(np.diff(audio[window])).max() < 1.5 * np.abs(np.diff(pcm[window])).max()


def test_the_snr_check_catches_a_one_packet_gap(rendered) -> None:
    """What the join test guards against: segments missing one AAC frame at a join."""
    pcm, track, _, _ = rendered
    decoder = av.CodecContext.create("aac", "r")
    decoder.extradata = track.extradata
    join = 81 * RATE // FPS
    kept = [p for p in track.packets if not (join <= p.pts < join + AAC_FRAME)]
    audio = []
    for aac in kept:
        audio += [f.to_ndarray()[0] for f in decoder.decode(av.Packet(aac.data))]
    audio = np.concatenate(audio)[track.priming :]
    window = slice(join - 2 * AAC_FRAME, join + 2 * AAC_FRAME)
    assert snr_db(pcm[window], audio[window]) < 5


def test_joined_mp4_is_the_segments_copied(rendered) -> None:
    _, _, paths, joined = rendered
    segment_frames = [frame for path in paths for frame in decoded_video(path)]
    joined_frames = decoded_video(joined)
    assert len(segment_frames) == len(joined_frames) == FRAMES
    for index, (a, b) in enumerate(zip(segment_frames, joined_frames, strict=True)):
        assert np.array_equal(a, b), f"frame {index} changed in the join"
    data = joined.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "moov atom must come first (faststart)"
    with av.open(str(joined)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, audio.codec_context.name) == ("h264", "aac")
        assert video.start_time == 0 and video.frames == FRAMES
        assert video.duration * video.time_base == Fraction(FRAMES, FPS)
        assert abs(container.duration / 1e6 - FRAMES / FPS) < AAC_FRAME / RATE
        pts = [frame.pts * frame.time_base for frame in container.decode(video)]
    assert pts == [Fraction(i, FPS) for i in range(FRAMES)]


def test_segments_start_on_keyframes_and_continue_each_others_clock(rendered) -> None:
    _, _, paths, _ = rendered
    start, previous_audio_end = 0, None
    for path, size in zip(paths, CHUNKS, strict=True):
        with av.open(str(path)) as container:
            # Read while the container is open: a packet's stream dies with it.
            stamped = [(p.stream.type, p.pts, p.time_base, p.is_keyframe) for p in container.demux() if p.size]
        video = [(pts, time_base, key) for kind, pts, time_base, key in stamped if kind == "video"]
        audio = [pts for kind, pts, _, _ in stamped if kind == "audio"]
        assert video[0][2], f"{path.name} must start with a keyframe"
        # The global frame index, after the fixed offset every segment shares (none of PyAV's own).
        assert sorted((pts - TS_OFFSET) * time_base for pts, time_base, _ in video) == [
            Fraction(i, FPS) for i in range(start, start + size)
        ]
        if previous_audio_end is not None:
            # Audio picks up where the previous segment's stopped (within the 90 kHz rounding).
            assert abs(audio[0] - previous_audio_end) <= 1
        previous_audio_end = audio[-1] + round(AAC_FRAME / RATE * 90_000)
        start += size


def test_same_input_gives_the_same_packets_and_segment_bytes(tmp_path: Path, rendered) -> None:
    """A resumed render re-encodes the soundtrack and writes the segments the first run did not."""
    pcm, track, paths, _ = rendered
    again = AacTrack(pcm, RATE)
    assert again.packets == track.packets and again.extradata == track.extradata
    frames = np.stack([picture(i) for i in range(81, 81 + 72)])
    info = write_segment(tmp_path / "seg00001.ts", frames, start_frame=81, fps=FPS, audio=again, last=False)
    assert info == SegmentInfo(name="seg00001.ts", start_frame=81, frames=72, duration_s=2.88)
    assert (tmp_path / info.name).read_bytes() == paths[1].read_bytes()


def test_stereo_and_silent_segments_join(tmp_path: Path) -> None:
    track = AacTrack(soundtrack(40 * RATE // FPS, channels=2), RATE)
    paths = [tmp_path / info.name for info in write_all(tmp_path, track, chunks=(24, 16))]
    with av.open(str(join_segments(paths, tmp_path / "stereo.mp4"))) as container:
        assert container.streams.audio[0].codec_context.channels == 2
    silent = [tmp_path / "silent" / info.name for info in write_all(tmp_path / "silent", None, chunks=(10, 6))]
    with av.open(str(join_segments(silent, tmp_path / "silent.mp4"))) as container:
        assert not container.streams.audio and container.streams.video[0].frames == 16


class FailingTrack(AacTrack):
    """A soundtrack whose packets stop coming halfway (a worker interrupted mid-write)."""

    def packets_for(self, start_frame, end_frame, fps):
        packets = super().packets_for(start_frame, end_frame, fps)
        yield from packets[: len(packets) // 2]
        raise OSError("interrupted")


def test_a_failed_write_leaves_nothing(tmp_path: Path, rendered) -> None:
    pcm, _, paths, _ = rendered
    frames = np.stack([picture(i) for i in range(10)])
    with pytest.raises(OSError, match="interrupted"):
        write_segment(tmp_path / "seg.ts", frames, start_frame=0, fps=FPS, audio=FailingTrack(pcm, RATE), last=False)
    assert list(tmp_path.iterdir()) == []
    garbage = tmp_path / "garbage.ts"
    garbage.write_bytes(b"not a transport stream" * 100)
    with pytest.raises(av.error.FFmpegError):
        join_segments([paths[0], garbage], tmp_path / "joined.mp4")
    assert list(tmp_path.iterdir()) == [garbage]


def test_playlist_grows_then_ends() -> None:
    segments = [("https://x/seg00000.ts?sig=a", 3.24), ("https://x/seg00001.ts?sig=b", 2.88)]
    growing = hls_playlist(segments, ended=False)
    assert growing.splitlines() == [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-TARGETDURATION:4",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXTINF:3.240,",
        "https://x/seg00000.ts?sig=a",
        "#EXTINF:2.880,",
        "https://x/seg00001.ts?sig=b",
    ]
    ended = hls_playlist([*segments, ("https://x/seg00002.ts?sig=c", 0.76)], ended=True).splitlines()
    assert ended[: len(growing.splitlines())] == growing.splitlines()
    assert ended[-3:] == ["#EXTINF:0.760,", "https://x/seg00002.ts?sig=c", "#EXT-X-ENDLIST"]
    # Every segment rounded to the nearest second fits the target, as the spec requires.
    target = int(ended[3].split(":")[1])
    assert all(round(float(line[8:-1])) <= target for line in ended if line.startswith("#EXTINF:"))
    assert math.ceil(2.88) == int(hls_playlist(segments[1:], ended=False).splitlines()[3].split(":")[1])
    with pytest.raises(ValueError, match="one non-empty line"):
        hls_playlist([("a.ts\n#EXT-X-ENDLIST", 1.0)], ended=False)


def test_ffmpeg_plays_the_playlist_through(rendered) -> None:
    """FFmpeg's HLS demuxer (ffplay's) reads our playlist and plays the segments as one stream."""
    _, track, paths, joined = rendered
    playlist = paths[0].parent / "index.m3u8"
    playlist.write_text(hls_playlist([(p.name, n / FPS) for p, n in zip(paths, CHUNKS, strict=True)], ended=True))
    with av.open(str(playlist)) as container:
        assert container.format.name == "hls"
        stamps = [frame.pts for frame in container.decode(video=0)]
    assert np.array_equal(np.diff(stamps), np.full(FRAMES - 1, 90_000 // FPS))
    with av.open(str(playlist)) as container:
        audio = np.concatenate([frame.to_ndarray()[0] for frame in container.decode(audio=0)])
    mp4 = decoded_audio(joined)
    np.testing.assert_array_equal(audio[track.priming :][: len(mp4)], mp4)


def stored_mean(plane: av.video.plane.VideoPlane) -> float:
    """The mean of a plane's samples, without the padding at the end of each line."""
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return float(rows[:, : plane.width].mean())


def test_segments_and_their_join_carry_the_colour_their_pixels_were_converted_with(tmp_path: Path) -> None:
    lip_red = (200, 60, 40)
    red, green, blue = np.asarray(lip_red, float) / 255
    luma = 0.2126 * red + 0.7152 * green + 0.0722 * blue  # BT.709, limited range
    expected = np.array([16 + 219 * luma, 128 + 112 * (blue - luma) / 0.9278, 128 + 112 * (red - luma) / 0.7874])
    frames = np.full((4, 48, 64, 3), lip_red, np.uint8)
    segment = tmp_path / "seg00000.ts"
    write_segment(segment, frames, start_frame=0, fps=FPS, audio=None, last=True)
    joined = join_segments([segment], tmp_path / "joined.mp4")
    for path in (segment, joined):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            codec = stream.codec_context
            assert (codec.color_primaries, codec.color_trc, codec.colorspace, codec.color_range) == (1, 1, 1, 1)
            frame = next(container.decode(stream))
            got = np.array([stored_mean(plane) for plane in frame.planes])
        assert np.abs(got - expected).max() < 1.5, (path.name, got, expected)
    assert b"colrnclx" in joined.read_bytes(), "the joined MP4's colr atom must carry the stream's tags"
