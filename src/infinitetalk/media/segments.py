"""Segments: a long video written chunk by chunk as HLS (MPEG-TS) segments, then joined into one MP4.

Each finished chunk becomes one ``.ts`` segment, written once and never rewritten, by whichever
process rendered the chunk (a resumed render on another machine writes the rest). So a segment
depends on nothing but its frames, its first frame's index and the soundtrack:

- video: a fresh x264 encoder per segment (it starts with an IDR frame), timestamps = the global
  frame index, so segment k+1 continues segment k's clock;
- audio: the whole soundtrack is encoded to AAC once (:class:`AacTrack`, deterministic, so another
  machine re-encodes the same packets) and each segment carries the packets that start within its
  frames. Cutting one continuous AAC stream at packet boundaries is what keeps the joins gapless:
  an encoder per segment would add 1024 samples of priming at every join.

A player (hls.js, Safari, VLC, ffplay) feeds the segments through one audio decoder, so the audio
plays as the one stream it was encoded as. :func:`join_segments` copies the packets (no re-encode)
into a faststart MP4, and :func:`hls_playlist` lists the segments for watching while a job runs.

Writes are atomic: a hidden temporary file beside the target, renamed into place when complete.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from infinitetalk.media.video import AUDIO_BITRATE, X264_OPTIONS, tag_colour, yuv_frame

#: MPEG-TS counts time in 90 kHz ticks.
TS_TIME_BASE = Fraction(1, 90_000)
#: Every timestamp we write into a segment is shifted by this much, so none is negative: the first
#: segment starts with the AAC priming packet and x264's B-frame reordering, both a little before 0.
#: Left negative, libavformat would shift that one segment alone (by what its own packets need) and
#: break the clock the segments share. 1.4 s is what the ffmpeg CLI's TS output starts at, too.
#: :func:`join_segments` takes the first frame's stamp off again, whatever it is.
TS_OFFSET = 126_000
#: Samples per AAC frame (one packet).
AAC_FRAME = 1024
#: PCM handed to the encoder per call; any size gives the same packets (PyAV re-frames to 1024).
_PCM_BLOCK = AAC_FRAME * 16


@dataclass(frozen=True)
class AacPacket:
    """One AAC frame: raw bytes (no ADTS header), start and length in samples."""

    data: bytes
    pts: int
    duration: int


class AacTrack:
    """A whole soundtrack encoded to AAC once, kept in memory as packets.

    ``pcm`` is float32 mono ``[n]`` or ``[n, 2]``. Packet timestamps are in samples
    (``time_base = 1/sample_rate``).

    Priming: FFmpeg's AAC encoder emits one extra frame first, stamped ``pts = -1024``. We keep
    its stamps as they are: decoded output stamped ``p`` is then input sample ``p``, so the audio
    lines up with video frame 0 at t = 0. The first segment carries the priming packet 23 ms
    before its first frame (TS has no way to say "discard"; a player plays 23 ms of near silence
    early); the joined MP4 gets an edit list that skips it (FFmpeg's mp4 muxer writes one for a
    negative first timestamp, and decoders honour it), so its audio starts exactly at input sample 0.
    """

    def __init__(self, pcm: np.ndarray, sample_rate: int = 44_100) -> None:
        pcm = np.asarray(pcm)
        if pcm.ndim == 2 and pcm.shape[1] == 1:
            pcm = pcm[:, 0]
        if not (pcm.ndim == 1 or (pcm.ndim == 2 and pcm.shape[1] == 2)) or len(pcm) == 0:
            raise ValueError(f"expected mono [n] or stereo [n, 2] PCM with n > 0, got shape {pcm.shape}")
        self.sample_rate = sample_rate
        self.layout = "mono" if pcm.ndim == 1 else "stereo"
        self.samples = len(pcm)
        self.time_base = Fraction(1, sample_rate)
        self.packets, self.extradata = self._encode(pcm)
        self.priming = -self.packets[0].pts

    @classmethod
    def encode(cls, pcm: np.ndarray, sample_rate: int = 44_100) -> AacTrack:
        return cls(pcm, sample_rate)

    def _encode(self, pcm: np.ndarray) -> tuple[tuple[AacPacket, ...], bytes]:
        encoder = av.CodecContext.create("aac", "w")
        encoder.sample_rate = self.sample_rate
        encoder.layout = self.layout
        encoder.format = "fltp"
        encoder.bit_rate = AUDIO_BITRATE
        encoder.time_base = self.time_base
        # FFmpeg's constant-quantiser coder, not its default two-loop search: a fifth of the CPU (0.16 s against
        # 0.68 s for 18.6 s of speech, ~0.025 s per video second of a preview) and 1.4% fewer bytes at 128 kb/s
        encoder.options = {"aac_coder": "fast"}
        encoder.open()
        planar = np.ascontiguousarray(np.atleast_2d(pcm.astype(np.float32, copy=False).T))
        packets: list[AacPacket] = []

        def keep(encoded: list[av.Packet]) -> None:
            packets.extend(AacPacket(bytes(p), int(p.pts), int(p.duration)) for p in encoded)

        for start in range(0, planar.shape[1], _PCM_BLOCK):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, start : start + _PCM_BLOCK]), format="fltp", layout=self.layout
            )
            frame.sample_rate = self.sample_rate
            frame.pts = start
            keep(encoder.encode(frame))
        keep(encoder.encode(None))
        return tuple(packets), bytes(encoder.extradata or b"")

    def packets_for(self, start_frame: int, end_frame: int | None, fps: int) -> list[AacPacket]:
        """The packets that start within frames [start_frame, end_frame); ``None`` = to the end.

        The first segment (start_frame 0) also takes the priming packet, which starts before 0.
        Integer arithmetic: a packet never falls in two segments, or in none.
        """
        return [
            p
            for p in self.packets
            if (start_frame == 0 or p.pts * fps >= start_frame * self.sample_rate)
            and (end_frame is None or p.pts * fps < end_frame * self.sample_rate)
        ]


@dataclass(frozen=True)
class SegmentInfo:
    """What a playlist and a checkpoint need to know of a written segment."""

    name: str
    start_frame: int
    frames: int
    duration_s: float


def write_segment(
    path: str | Path,
    frames: np.ndarray | Sequence[np.ndarray],
    *,
    start_frame: int,
    fps: int,
    audio: AacTrack | None,
    last: bool,
) -> SegmentInfo:
    """Write ``frames`` (uint8 RGB ``[n, H, W, 3]``) as one MPEG-TS segment at ``path``, atomically.

    ``start_frame`` is the global index of the first frame; ``last`` gives this segment every audio
    packet after its frames too (the soundtrack may run on past the last frame).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"expected uint8 frames [n, H, W, 3] with n > 0, got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if width % 2 or height % 2:
        raise ValueError(f"H.264 4:2:0 needs even sides, got {width}x{height}")
    if start_frame < 0 or fps <= 0:
        raise ValueError(f"need start_frame >= 0 and fps > 0, got {start_frame} and {fps}")
    path = Path(path)
    end_frame = start_frame + len(frames)
    frame_base = Fraction(1, fps)
    with _output(path, ".ts", format="mpegts") as container:
        video = container.add_stream("libx264", rate=fps, options=dict(X264_OPTIONS))
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.time_base = frame_base
        tag_colour(video)
        if audio is not None:
            # Opened as an encoder only so the stream has AAC's parameters (the TS muxer builds
            # ADTS headers from them): we mux the track's packets and encode nothing here.
            sound = container.add_stream("aac", rate=audio.sample_rate, layout=audio.layout)
            sound.bit_rate = AUDIO_BITRATE
            # First, while the interleaver is empty: it then holds these few kilobytes and writes
            # them between the video packets in time order, however long the segment.
            for aac in audio.packets_for(start_frame, None if last else end_frame, fps):
                packet = av.Packet(aac.data)
                packet.pts = packet.dts = aac.pts
                packet.duration = aac.duration
                packet.time_base = audio.time_base
                packet.stream = sound
                container.mux(_shifted(packet, audio.time_base))
        for index, frame in enumerate(frames, start_frame):
            picture = yuv_frame(frame)
            picture.pts = index
            for packet in video.encode(picture):
                container.mux(_shifted(packet, frame_base))
        for packet in video.encode(None):
            container.mux(_shifted(packet, frame_base))
    return SegmentInfo(name=path.name, start_frame=start_frame, frames=len(frames), duration_s=len(frames) / fps)


def join_segments(paths: Sequence[str | Path], output_path: str | Path) -> Path:
    """Copy the segments' packets, in order, into one faststart MP4 (no re-encoding), atomically.

    The first segment's first frame becomes t = 0: whatever offset the TS timestamps carry (ours,
    :data:`TS_OFFSET`, plus any a muxer adds of its own) comes off every packet alike.
    """
    if not paths:
        raise ValueError("no segments to join")
    output_path = Path(output_path)
    with av.open(str(paths[0])) as first:
        video = first.streams.video[0]
        origin = min(p.pts for p in first.demux(video) if p.pts is not None) * video.time_base
    with _output(output_path, ".mp4", format="mp4", container_options={"movflags": "+faststart"}) as output:
        targets: dict[str, av.stream.Stream] = {}
        for number, segment in enumerate(paths):
            with av.open(str(segment)) as source:
                streams = [*source.streams.video[:1], *source.streams.audio[:1]]
                if number == 0:
                    # The mp4 muxer turns TS's ADTS AAC into MP4's form itself (aac_adtstoasc).
                    targets = {stream.type: output.add_stream_from_template(stream) for stream in streams}
                for packet in source.demux(streams):
                    target = targets.get(packet.stream.type)
                    if packet.size == 0 or target is None:
                        continue  # an end-of-stream marker, or a stream the first segment lacks
                    shift = origin / packet.time_base
                    if shift.denominator != 1:
                        raise ValueError("the segments' time bases differ; write them all with write_segment")
                    if packet.pts is not None:
                        packet.pts -= int(shift)
                    if packet.dts is not None:
                        packet.dts -= int(shift)
                    packet.stream = target
                    output.mux(packet)
    return output_path


def hls_playlist(segments: Sequence[tuple[str, float]], *, ended: bool, target_duration: int | None = None) -> str:
    """An HLS EVENT playlist of ``(uri, seconds)`` segments; ``ended`` closes it (ENDLIST).

    The spec forbids TARGETDURATION changing while a playlist grows; it is the longest segment's
    seconds rounded up, which holds when the first segment is the longest (the neural engine's
    first chunk is). A caller that knows better passes ``target_duration``.
    """
    for uri, _ in segments:
        if not uri or any(c in uri for c in "\r\n"):
            raise ValueError(f"a segment URI must be one non-empty line, got {uri!r}")
    # Durations are printed to the millisecond; the target is computed from what is printed.
    durations = [f"{seconds:.3f}" for _, seconds in segments]
    longest = max((math.ceil(float(d)) for d in durations), default=1)
    target = max(longest, target_duration or 0, 1)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
    ]
    for (uri, _), duration in zip(segments, durations, strict=True):
        lines += [f"#EXTINF:{duration},", uri]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _shifted(packet: av.Packet, time_base: Fraction) -> av.Packet:
    """``packet`` restamped in 90 kHz ticks plus :data:`TS_OFFSET` (see there)."""
    for field in ("pts", "dts"):
        value = getattr(packet, field)
        if value is not None:
            setattr(packet, field, round(value * time_base / TS_TIME_BASE) + TS_OFFSET)
    if packet.duration:
        packet.duration = round(packet.duration * time_base / TS_TIME_BASE)
    packet.time_base = TS_TIME_BASE
    return packet


@contextmanager
def _output(path: Path, suffix: str, **options: object) -> Iterator[av.container.OutputContainer]:
    """An output container on a temporary file beside ``path``, renamed onto it if the block
    succeeds and removed if not.

    The file is created with mode 0666, so the kernel applies the process's umask as for any new file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}-{secrets.token_hex(4)}.partial{suffix}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        container = av.open(str(tmp), mode="w", **options)
        try:
            yield container
        except BaseException:
            try:
                container.close()
            except (av.error.FFmpegError, ValueError):
                pass  # half-built; it is deleted below, and the first error is the one to report
            raise
        container.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
