"""``probe``: what a media file really holds (streams, codecs, sizes, measured durations)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import av

from infinitetalk.errors import InvalidRequest
from infinitetalk.media.audio import probe_duration


@dataclass
class StreamInfo:
    index: int
    kind: str
    codec: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frames: int | None = None
    sample_rate: int | None = None
    channels: int | None = None


@dataclass
class MediaInfo:
    path: str
    size_bytes: int
    container: str
    #: Measured: decoded audio samples / rate, or video packets / frame rate.
    duration_s: float
    streams: list[StreamInfo] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def probe(path: str | Path) -> MediaInfo:
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            streams = [_describe(s) for s in container.streams if s.type in ("audio", "video")]
            fmt = container.format.name
            video = [s for s in streams if s.kind == "video"]
            if video:
                counts = {s.index: 0 for s in video}
                for packet in container.demux(*[container.streams[s.index] for s in video]):
                    if packet.size:
                        counts[packet.stream.index] += 1
                for s in video:
                    s.frames = counts[s.index]
    except av.error.FFmpegError as exc:
        raise InvalidRequest(
            f"{path.name} is not a media file PyAV can read ({exc.strerror or 'damaged or unknown format'})",
            code="media_unreadable",
        ) from None
    duration = 0.0
    if any(s.kind == "audio" for s in streams):
        duration = probe_duration(path)
    elif video and video[0].fps:
        duration = (video[0].frames or 0) / video[0].fps
    return MediaInfo(str(path), path.stat().st_size, fmt, round(duration, 3), streams)


def _describe(stream: av.stream.Stream) -> StreamInfo:
    info = StreamInfo(index=stream.index, kind=stream.type, codec=stream.codec_context.name)
    if stream.type == "video":
        info.width, info.height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate
        info.fps = round(float(rate), 3) if rate else None
    else:
        info.sample_rate = stream.codec_context.sample_rate
        info.channels = stream.codec_context.channels
    return info
