"""Video: the MP4 writer (H.264 yuv420p + AAC, faststart) and source-video decoding.

The writer streams: frames are encoded as they arrive, so memory stays flat however long
the video. Encoding runs on its own thread (PyAV lets go of the GIL inside x264), so an
engine makes the next frame while the last one is compressed. It writes to a hidden
temporary file beside the target and renames it into place only when everything
succeeded; on any failure nothing is left at the output path.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from infinitetalk.errors import InvalidRequest
from infinitetalk.media.image import cover_crop

#: x264 settings: a preview-friendly speed with good quality for faces. Motion search by diamond
#: (veryfast's own is hexagon): a talking head moves a few pixels a frame, where the wider search finds
#: nothing more; on the preview benchmark's 480p clip it cut x264's CPU time by ~15% (1.46 -> 1.27 s
#: for 465 frames) at the same size and quality (761 -> 750 kB, Y-PSNR 43.57 -> 43.64 dB).
X264_OPTIONS = {"preset": "veryfast", "crf": "20", "x264-params": "me=dia"}
AUDIO_BITRATE = 128_000
#: Frames waiting for the encoder thread; bounds memory if the engine is faster than x264.
_QUEUE_FRAMES = 8
#: The process's umask, read once (reading it means setting it): finished files get the usual
#: permissions, not the 0600 of the temporary file they were written as.
_UMASK = os.umask(0)
os.umask(_UMASK)


@dataclass(frozen=True)
class ColourDescription:
    """How our YUV pixels relate to the RGB they came from, as H.264's VUI and MP4's ``colr`` say it.

    Untagged, each player guesses (BT.601 below 720 lines, BT.709 above, in most), so the same
    file showed different colours in different players. Our frames are sRGB pictures (BT.709
    primaries), converted with the BT.709 matrix into limited range, and tagged as exactly that.
    The transfer is tagged BT.709 (1), not sRGB's own code (13): it is what web video of sRGB
    sources carries, and what every player, old QuickTime included, honours; 13 is ignored by some
    players and shown with another curve by others. Values are the ITU-T H.273 code points.
    """

    primaries: int = 1  # BT.709 (the sRGB primaries)
    transfer: int = 1  # BT.709 (see above)
    matrix: int = 1  # BT.709
    levels: int = 1  # limited ("tv", 16-235), what every player expects of H.264


#: The one colour description every video we write carries.
COLOUR = ColourDescription()


def tag_colour(stream: av.VideoStream) -> None:
    """Tag an encoder's stream with :data:`COLOUR` (x264 writes it into the stream's VUI)."""
    stream.codec_context.color_primaries = COLOUR.primaries
    stream.codec_context.color_trc = COLOUR.transfer
    stream.codec_context.colorspace = COLOUR.matrix
    stream.codec_context.color_range = COLOUR.levels


def _bt709_limited() -> np.ndarray:
    """Rows Y', Cb, Cr of the BT.709 matrix into limited range, as ``cv2.transform``'s 3x4 (scale | offset)."""
    kr, kb = 0.2126, 0.0722
    luma = np.array([kr, 1 - kr - kb, kb])
    blue_diff = (np.array([0.0, 0.0, 1.0]) - luma) / (2 - 2 * kb)
    red_diff = (np.array([1.0, 0.0, 0.0]) - luma) / (2 - 2 * kr)
    scale = np.stack([219 / 255 * luma, 224 / 255 * blue_diff, 224 / 255 * red_diff])
    return np.hstack([scale, [[16.0], [128.0], [128.0]]]).astype(np.float32)


#: Must stay the matrix and range :data:`COLOUR` tags (tests/media checks the decoded colours against it).
_RGB_TO_YUV = _bt709_limited()


def _plane(frame: av.VideoFrame, index: int, height: int, width: int) -> np.ndarray:
    """A writable view of one of the frame's planes, without the padding at each line's end."""
    plane = frame.planes[index]
    return np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)[:, :width]


def yuv_frame(rgb: np.ndarray | av.VideoFrame) -> av.VideoFrame:
    """An RGB frame converted to yuv420p exactly as :data:`COLOUR` says.

    Left to the encoder, PyAV converts with swscale's default (BT.601), whatever the stream is
    tagged with; converting here keeps the pixels and the tags in agreement. OpenCV does the
    matrix (swscale with a BT.709 matrix cost ~1.5 ms a 576x704 frame, an eighth of the preview's
    CPU time per frame; this ~0.5 ms), written straight into the frame's planes. Each chroma
    sample is the conversion of its 2x2 pixels' mean colour (swscale weighs them differently:
    on a photo the two agree within 2 levels, and Y within 1).
    """
    if isinstance(rgb, av.VideoFrame):
        rgb = rgb.to_ndarray(format="rgb24")
    height, width = rgb.shape[:2]
    frame = av.VideoFrame(width, height, "yuv420p")
    cv2.mixChannels([cv2.transform(rgb, _RGB_TO_YUV)], [_plane(frame, 0, height, width)], [0, 0])
    half = cv2.resize(rgb, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    chroma = [_plane(frame, 1, height // 2, width // 2), _plane(frame, 2, height // 2, width // 2)]
    cv2.mixChannels([cv2.transform(half, _RGB_TO_YUV)], chroma, [1, 0, 2, 1])
    frame.colorspace, frame.color_range = COLOUR.matrix, COLOUR.levels
    return frame


class Mp4Writer:
    """Write RGB frames and one audio track to ``path`` atomically.

    >>> with Mp4Writer(path, width=640, height=640, fps=25, audio=pcm, sample_rate=44100) as w:
    ...     for frame in frames:
    ...         w.write(frame)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: int,
        audio: np.ndarray | None = None,
        sample_rate: int = 44_100,
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 4:2:0 needs even sides, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, fps
        self.frames_written = 0
        self._audio = audio
        self._sample_rate = sample_rate
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}-", suffix=".partial.mp4", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._container = av.open(str(self._tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        self._video = self._container.add_stream("libx264", rate=fps, options=dict(X264_OPTIONS))
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "yuv420p"
        self._video.time_base = Fraction(1, fps)
        tag_colour(self._video)
        self._audio_stream = None
        if audio is not None:
            self._audio_stream = self._container.add_stream("aac", rate=sample_rate)
            self._audio_stream.layout = "mono" if audio.ndim == 1 else "stereo"
            self._audio_stream.bit_rate = AUDIO_BITRATE
        self._queue: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(_QUEUE_FRAMES)
        self._error: BaseException | None = None
        self._encoder = threading.Thread(target=self._encode_loop, name="mp4-encoder", daemon=True)
        self._encoder.start()

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames of {self.height}x{self.width}x3, got {frame.dtype} {frame.shape}")
        self._raise_encoder_error()
        # Copied, so the caller may reuse its array as soon as write() returns.
        self._queue.put((self.frames_written, frame.copy()))
        self.frames_written += 1

    def close(self) -> Path:
        """Flush, write the audio, and move the finished file into place."""
        self._finish_encoder()
        self._raise_encoder_error()
        self._container.mux(self._video.encode(None))
        self._container.close()
        os.chmod(self._tmp, 0o666 & ~_UMASK)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        self._finish_encoder()
        try:
            self._container.close()
        except (av.error.FFmpegError, ValueError):
            pass  # the container may be half-built; we are deleting it anyway
        self._tmp.unlink(missing_ok=True)

    def _encode_loop(self) -> None:
        # The whole soundtrack is known up front: encode it while the engine prepares its first frames.
        if self._audio_stream is not None:
            try:
                self._write_audio()
            except BaseException as exc:  # handed to the caller's thread by _raise_encoder_error
                self._error = exc
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so write() never blocks on a dead encoder
            try:
                # Converted on this thread: OpenCV lets go of the GIL, like x264.
                video_frame = yuv_frame(item[1])
                video_frame.pts = item[0]
                self._container.mux(self._video.encode(video_frame))
            except BaseException as exc:  # handed to the caller's thread by _raise_encoder_error
                self._error = exc

    def _finish_encoder(self) -> None:
        if self._encoder.is_alive():
            self._queue.put(None)
            self._encoder.join()

    def _raise_encoder_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"video encoding failed: {self._error}") from self._error

    def _write_audio(self) -> None:
        assert self._audio_stream is not None and self._audio is not None
        pcm = np.ascontiguousarray(self._audio, dtype=np.float32)
        planar = pcm.reshape(1, -1) if pcm.ndim == 1 else np.ascontiguousarray(pcm.T)
        hop = 1024 * 16
        for start in range(0, planar.shape[1], hop):
            block = np.ascontiguousarray(planar[:, start : start + hop])
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self._audio_stream.layout.name)
            frame.sample_rate = self._sample_rate
            frame.pts = start
            self._container.mux(self._audio_stream.encode(frame))
        self._container.mux(self._audio_stream.encode(None))

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@contextmanager
def _video_stream(path: str | Path, field: str) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """The file's first video stream, with FFmpeg's errors turned into ``video_unreadable``."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidRequest(
                    f"{field}: the file has no video stream; send an MP4/MOV/WebM video",
                    code="video_unreadable",
                    field=field,
                )
            yield container, container.streams.video[0]
    except av.error.FFmpegError as exc:
        raise InvalidRequest(
            # strerror only: the full text names the file, which on a server is a path of ours
            f"{field}: could not decode the video ({exc.strerror or 'damaged or not a video'}); "
            "send an MP4/MOV/WebM video",
            code="video_unreadable",
            field=field,
        ) from None


def iter_frames(path: str | Path, *, field: str = "video") -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time in seconds, RGB uint8 frame) for every frame of the first video stream."""
    for seconds, frame in _decoded(path, field):
        yield seconds, frame.to_ndarray(format="rgb24")


def _decoded(path: str | Path, field: str) -> Iterator[tuple[float, av.VideoFrame]]:
    """(time in seconds, decoded frame), not yet converted: callers convert only what they show."""
    with _video_stream(path, field) as (container, stream):
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield (float(frame.pts * stream.time_base) if frame.pts is not None else 0.0), frame


def first_frame(path: str | Path, *, field: str = "video") -> np.ndarray:
    """The first decodable frame (to size the output and find faces before decoding the rest)."""
    for _, frame in iter_frames(path, field=field):
        return frame
    raise InvalidRequest(f"{field}: the video has no frames", code="video_unreadable", field=field)


def check_video(path: str | Path, *, field: str = "video") -> tuple[int, int]:
    """Open the container and decode the first frame; return its (width, height).

    The cheap check for the submit path: what a render needs first (a video stream, a decodable
    frame), without paying to decode the whole file while the caller waits.
    """
    height, width = first_frame(path, field=field).shape[:2]
    return width, height


def video_fps(path: str | Path, *, field: str = "video") -> float:
    """The first video stream's average frame rate (guessed by FFmpeg when the container has none)."""
    with _video_stream(path, field) as (_container, stream):
        rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise InvalidRequest(f"{field}: the video has no frame rate; send an MP4/MOV/WebM video",
                             code="video_unreadable", field=field)
    return float(rate)


def prefetched(frames: Iterator[np.ndarray], depth: int = 4) -> Iterator[np.ndarray]:
    """Run ``frames`` on a thread ``depth`` frames ahead of the consumer.

    Decoding and resizing let go of the GIL, so the source's next frames are ready while an
    engine works on this one. Errors arrive in the consumer's thread, in order.
    """
    ready: queue.Queue[tuple[str, object]] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for frame in frames:
                if stop.is_set():
                    return
                ready.put(("frame", frame))
            ready.put(("end", None))
        except BaseException as exc:  # re-raised below, in the consumer's thread
            ready.put(("error", exc))

    worker = threading.Thread(target=produce, name="frame-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise item  # type: ignore[misc]
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                worker.join(0.01)


def video_duration(path: str | Path, *, field: str = "video") -> float:
    """Seconds of video: packets counted (no decoding) over the average frame rate."""
    with _video_stream(path, field) as (container, stream):
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        count = sum(1 for packet in container.demux(stream) if packet.size)
    return count / rate


def timeline_frames(
    path: str | Path, *, fps: int, num_frames: int, width: int, height: int, field: str = "video"
) -> Iterator[np.ndarray]:
    """Exactly ``num_frames`` frames of the source at ``fps``, cover-cropped to width x height.

    Rate conversion picks, for each output instant, the latest source frame shown by then.
    When the speech outlasts the video, the video then plays backwards and forwards again
    (ping-pong), which never jumps; the frames shown are kept JPEG-compressed in memory for
    that, so memory stays small however long the source. When the speech is shorter, the
    video is cut.
    """
    covered = min(num_frames, max(1, round(video_duration(path, field=field) * fps)))
    keep = covered < num_frames
    shown: list[bytes] = []
    source = _decoded(path, field)
    start, latest = next(source, (None, None))
    if latest is None:
        raise InvalidRequest(f"{field}: the video has no frames", code="video_unreadable", field=field)
    pending = next(source, None)
    current: np.ndarray | None = None
    for index in range(covered):
        instant = start + index / fps
        while pending is not None and pending[0] <= instant + 1e-6:
            latest, current = pending[1], None  # a newer frame is due: skipped ones are never converted
            pending = next(source, None)
        if current is None:
            current = cover_crop(latest.to_ndarray(format="rgb24"), width, height, fast=True)
        if keep:
            shown.append(cv2.imencode(".jpg", current, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
        yield current
    source.close()
    period = max(1, 2 * (len(shown) - 1))
    for index in range(covered, num_frames):
        phase = index % period
        back = phase if phase < len(shown) else period - phase
        yield cv2.imdecode(np.frombuffer(shown[back], np.uint8), cv2.IMREAD_UNCHANGED)
