"""The InfiniteTalk pipeline: speech + a portrait (or a video) -> frames, chunk by chunk.

Read ``generate_chunks`` top to bottom: check, encode text/audio, plan chunks, then per
chunk encode the reference, denoise with the flow-match Euler sampler, decode,
colour-correct, carry the last 9 frames over as the next chunk's motion context, and yield
the frames with the state a later run resumes from (another process may pick it up).
The official pipeline (``wan/multitalk.py`` of MeiGen-AI/InfiniteTalk) is followed wherever
the weights were trained or tuned with its behaviour; docs/neural-engine.md lists the rest.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from infinitetalk.engines.base import CancelToken, ProgressCallback, chunk_after, no_progress
from infinitetalk.engines.neural.audio import AudioEncoder, audio_windows
from infinitetalk.engines.neural.loop import (
    CHUNK_FRAMES,
    MOTION_FRAMES,
    Chunk,
    color_correct,
    pad_audio_tail,
    plan_chunks,
)
from infinitetalk.engines.neural.sampler import Guidance, euler_step, sigma_schedule
from infinitetalk.engines.neural.text_clip import ImageEncoder, TextEncoder
from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer
from infinitetalk.engines.neural.vae import VideoVAE
from infinitetalk.errors import EngineError, InvalidRequest

DEFAULT_PROMPT = "A person talks to the camera with natural expressions and head movement, clear face, steady shot."
#: The negative prompt the model was tuned with: ``sample_neg_prompt`` of the InfiniteTalk config
#: (``wan/configs/wan_multitalk_14B.py``), used by the official pipeline when none is given.
NEGATIVE_PROMPT = (
    "bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
    "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, "
    "messy background, three legs, many people in the background, walking backwards"
)
#: Prompt embeddings an engine keeps on its device (4 MiB each at full size: [1, 512, 4096] bf16): the negative
#: prompt, which every job uses, and the latest others, so a server whose jobs bring new prompts never fills
#: its card with old ones.
TEXT_CACHE_SIZE = 4


@dataclass(frozen=True)
class SamplingOptions:
    steps: int = 40
    shift: float = 7.0  # 7 for the 480p family, 11 for 720p
    guidance: Guidance = Guidance()
    #: 0..1; the official command line's default is 1.0 (``--color_correction_strength``).
    color_correction: float = 1.0
    #: Run the guidance passes as one batched forward (fast) or one at a time (less memory).
    batch_passes: bool = True


#: The sampling modes (the ``neural_mode`` setting). The fast ones are the official settings for the lightx2v
#: step-distilled LoRA: 4 steps, shift 2, text guidance off (scale 1), audio guidance 2 or off.
SAMPLING_MODES = {
    "quality": SamplingOptions(),
    "fast": SamplingOptions(steps=4, shift=2.0, guidance=Guidance(text_scale=1.0, audio_scale=2.0)),
    "fast-1p": SamplingOptions(steps=4, shift=2.0, guidance=Guidance(text_scale=1.0, audio_scale=1.0)),
}


@dataclass
class PipelineInputs:
    """Decoded inputs at the output size; frames are RGB uint8 HxWx3."""

    audio: list[np.ndarray]  # one float32 16 kHz track per speaker, as long as the video
    num_frames: int
    seed: int
    prompt: str | None = None
    image: np.ndarray | None = None  # image-to-video reference
    video: Iterator[np.ndarray] | None = None  # video-to-video source frames on the output timeline
    ref_masks: torch.Tensor | None = None  # [3, tokens of one latent frame] for two speakers


@dataclass(frozen=True)
class ChunkOutput:
    """One finished chunk: every frame it decoded, and the state that resumes after it."""

    chunk: Chunk
    count: int  # chunks in the whole job
    frames: np.ndarray  # uint8 [81, H, W, 3], the re-made motion frames included
    #: ``chunk``, ``num_frames``, ``generator`` (the CPU noise generator's state, uint8) and, unless this is the
    #: last chunk, ``motion`` (float32 [1, 16, 3, H/8, W/8]: the next chunk's clean context latents).
    state: dict[str, np.ndarray]

    @property
    def new_frames(self) -> np.ndarray:
        """The frames this chunk adds to the video."""
        return self.frames[self.chunk.keep_from : self.chunk.keep_from + self.chunk.keep]


def to_tensor(frame: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 HxWx3 -> float [1, 3, H, W] in [-1, 1]."""
    return torch.from_numpy(frame).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def to_frames(video: torch.Tensor) -> np.ndarray:
    """[1, 3, F, H, W] in [-1, 1] -> uint8 [F, H, W, 3]."""
    x = ((video[0].permute(1, 2, 3, 0) + 1.0) * 127.5).round().clamp(0, 255)
    return x.to(torch.uint8).cpu().numpy()


class _SourceFrames:
    """Random access, forwards only, into a streamed source video (keeps the last frame for past the end)."""

    def __init__(self, frames: Iterator[np.ndarray]) -> None:
        self._it, self._pos, self._last = iter(frames), -1, None

    def at(self, index: int) -> np.ndarray:
        while self._pos < index:
            nxt = next(self._it, None)
            if nxt is None:
                break
            self._last, self._pos = nxt, self._pos + 1
        if self._last is None:
            raise InvalidRequest("the source video has no frames")
        return self._last


class InfiniteTalkPipeline:
    def __init__(
        self,
        transformer: InfiniteTalkTransformer,
        vae: VideoVAE,
        text_encoder: TextEncoder,
        image_encoder: ImageEncoder,
        audio_encoder: AudioEncoder,
        device: torch.device | str = "cpu",
    ) -> None:
        self.transformer = transformer
        self.vae = vae
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.audio_encoder = audio_encoder
        self.device = torch.device(device)
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @property
    def dtype(self) -> torch.dtype:
        """The transformer's compute dtype (its norms stay fp32, so ask a linear layer)."""
        return self.transformer.patch_embedding.weight.dtype

    # --- steps -------------------------------------------------------------------------
    def check_inputs(self, inputs: PipelineInputs, height: int, width: int) -> None:
        if (inputs.image is None) == (inputs.video is None):
            raise InvalidRequest("give exactly one of an image (image-to-video) or a video (video-to-video)")
        if height % 16 or width % 16:
            raise InvalidRequest(f"output size {width}x{height} must be a multiple of 16 on both sides; use a bucket")
        if not 1 <= len(inputs.audio) <= 2:
            raise InvalidRequest(f"InfiniteTalk animates one or two speakers, got {len(inputs.audio)} audio tracks")

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        embedding = self._text_cache.pop(prompt, None)  # the same prompts repeat for every job
        if embedding is None:
            embedding = self.text_encoder(prompt).to(self.device, self.dtype)
        self._text_cache[prompt] = embedding  # now the most recent
        while len(self._text_cache) > TEXT_CACHE_SIZE:
            self._text_cache.popitem(last=False)
        return embedding

    def encode_audio(self, tracks: list[np.ndarray], num_frames: int, end: int) -> np.ndarray:
        """[people, rows, L, C] float32 in host memory: embeddings for ``num_frames`` frames, padded as the
        official loop pads them for a last chunk that ends at frame ``end`` (``loop.pad_audio_tail``).

        The whole video's features stay on the host (as the official code keeps them), a numpy array so that
        no torch tensor of the job's length exists; only each chunk's windows go to the device
        (``chunk_audio``), so the device's memory does not depend on the video's length.
        """
        return np.stack([pad_audio_tail(self.audio_encoder(a, num_frames).cpu(), end).numpy() for a in tracks])

    def chunk_audio(self, features: np.ndarray, start: int) -> torch.Tensor:
        """[people, 81, 5, L, C] on the device: the +-2 frame windows of the chunk that starts at ``start``."""
        windows = [audio_windows(torch.from_numpy(person), start, CHUNK_FRAMES) for person in features]
        return torch.stack(windows).to(self.device)

    def condition(self, ref: np.ndarray, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP tokens of the reference, and [1, 20, T, h, w] = 4-channel first-frame mask + VAE(ref, zeros)."""
        pixels = to_tensor(ref, self.device)
        clip = self.image_encoder(pixels).to(self.dtype)
        video = torch.cat([pixels[:, :, None], pixels.new_zeros(1, 3, frames - 1, *pixels.shape[-2:])], dim=2)
        lat = self.vae.encode(video)
        mask = torch.zeros(1, 4, *lat.shape[2:], device=lat.device)
        mask[:, :, 0] = 1.0  # the first latent frame (= first video frame repeated 4x) is given
        return clip, torch.cat([mask, lat], dim=1)

    def predict(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        t: float,
        texts: list[torch.Tensor],
        audios: list[torch.Tensor],
        clip: torch.Tensor,
        opts: SamplingOptions,
        ref_masks: torch.Tensor | None,
    ) -> torch.Tensor:
        """One guidance pass per (text, audio) pair; ``audios`` holds [people, F, 5, L, C] each."""
        inp = torch.cat([x, cond], dim=1).to(self.dtype)
        n = len(texts)
        if opts.batch_passes:
            out = self.transformer(
                inp.expand(n, -1, -1, -1, -1),
                torch.full((n,), t, device=self.device),
                torch.cat(texts),
                clip.expand(n, -1, -1),
                audios,
                ref_masks,
            )
            preds = list(out.float().chunk(n))
        else:
            ts = torch.full((1,), t, device=self.device)
            preds = [
                self.transformer(inp, ts, te, clip, [au], ref_masks).float()
                for te, au in zip(texts, audios, strict=True)
            ]
        return opts.guidance.combine(preds)

    # --- the loop ----------------------------------------------------------------------
    def generate(
        self,
        inputs: PipelineInputs,
        height: int,
        width: int,
        opts: SamplingOptions = SamplingOptions(),
        progress: ProgressCallback = no_progress,
        cancel: CancelToken | None = None,
        on_chunk: Callable[[int, np.ndarray], None] | None = None,
    ) -> Iterator[np.ndarray]:
        """The video's frames in order; ``on_chunk(index, frames)`` sees every decoded frame of each chunk."""
        for out in self.generate_chunks(inputs, height, width, opts, progress, cancel):
            if on_chunk is not None:
                on_chunk(out.chunk.index, out.frames)
            yield from out.new_frames

    @torch.no_grad()
    def generate_chunks(
        self,
        inputs: PipelineInputs,
        height: int,
        width: int,
        opts: SamplingOptions = SamplingOptions(),
        progress: ProgressCallback = no_progress,
        cancel: CancelToken | None = None,
        resume: dict[str, np.ndarray] | None = None,
    ) -> Iterator[ChunkOutput]:
        """Each chunk with the state that resumes after it; from the chunk after ``resume``'s, if given.

        A resumed run makes exactly the latents and frames of an uninterrupted one: the state
        holds what carries from chunk to chunk (the motion latents and the noise generator's
        state); the text and audio embeddings, the colour reference and each chunk's
        conditioning are recomputed from the same inputs.
        """
        # 1. Check inputs
        self.check_inputs(inputs, height, width)
        cancel = cancel or CancelToken()

        # 2. Plan chunks; every chunk is 81 frames, the last one's audio is padded past the end
        chunks = plan_chunks(inputs.num_frames)
        end = chunks[-1].start + CHUNK_FRAMES
        latent_t = (CHUNK_FRAMES - 1) // 4 + 1
        motion_t = (MOTION_FRAMES - 1) // 4 + 1
        first = 0 if resume is None else chunk_after(resume, inputs.num_frames, len(chunks))
        work, done = len(chunks) * opts.steps, first * opts.steps
        if first == len(chunks):  # the checkpoint came after the last chunk
            progress(1.0, f"chunk {len(chunks)}/{len(chunks)}")
            return

        # 3. Encode prompts and audio
        text = self.encode_prompt(inputs.prompt or DEFAULT_PROMPT)
        negative = self.encode_prompt(NEGATIVE_PROMPT)
        progress(done / work, "encoding audio")
        audio = self.encode_audio(inputs.audio, inputs.num_frames, end)

        # 4. Timesteps, noise, and what the chunks carry over (from the state when resuming)
        sigmas = sigma_schedule(opts.steps, opts.shift).tolist()
        generator = torch.Generator("cpu").manual_seed(inputs.seed)
        source = _SourceFrames(inputs.video) if inputs.video is not None else None
        # The colour reference is the first chunk's reference frame, for every chunk.
        reference = to_tensor(inputs.image if source is None else source.at(0), self.device)
        motion: torch.Tensor | None = None
        if resume is not None:
            # Copies: a loaded checkpoint's arrays may be read-only (memory-mapped).
            generator.set_state(torch.tensor(resume["generator"], dtype=torch.uint8))
            motion = torch.tensor(resume["motion"], dtype=torch.float32, device=self.device)
            expected = (1, 16, motion_t, height // 8, width // 8)
            if tuple(motion.shape) != expected:
                raise EngineError(
                    f"the checkpoint's motion latents are {tuple(motion.shape)}, this job needs {expected}: "
                    "it belongs to another job; delete it to start this one over"
                )

        for chunk in chunks[first:]:
            # 5. Reference frame and conditioning for this chunk
            ref = inputs.image if source is None else source.at(chunk.start)
            clip, cond = self.condition(ref, CHUNK_FRAMES)
            windows = self.chunk_audio(audio, chunk.start)
            # Null audio for guidance: ONE person's zeros, still through audio_proj, as the official
            # ``torch.zeros_like(audio_embs)[-1:]``; with two speakers that pass is unrouted.
            null = torch.zeros_like(windows[-1:])
            if opts.guidance.passes == 3:
                texts, audios = [text, negative, negative], [windows, windows, null]
            elif opts.guidance.passes == 2:
                texts, audios = [text, text], [windows, null]
            else:
                texts, audios = [text], [windows]

            # 6. Latents: noise, with the clean context (reference or motion frames) imposed
            shape = (1, 16, latent_t, height // 8, width // 8)
            x = torch.randn(shape, generator=generator).to(self.device)
            clean = cond[:, 4:, :1] if motion is None else motion
            ctx = clean.shape[2]
            x[:, :, :ctx] = clean

            # 7. Denoising loop
            for i in range(opts.steps):
                cancel.raise_if_canceled()
                v = self.predict(x, cond, sigmas[i] * 1000.0, texts, audios, clip, opts, inputs.ref_masks)
                x = euler_step(x, v, sigmas[i], sigmas[i + 1])
                x[:, :, :ctx] = clean
                done += 1
                progress(done / work, f"chunk {chunk.index + 1}/{len(chunks)}, step {i + 1}/{opts.steps}")

            # 8. Decode (float, clamped to [-1, 1]), colour-correct, carry the last 9 frames over as
            #    motion context encoded from those float frames (as the official loop does), then
            #    round to uint8 for the output
            video = self.vae.decode(x)
            if opts.color_correction > 0:
                video = color_correct(video, reference, opts.color_correction)
            last = chunk.index == len(chunks) - 1
            if not last:
                motion = self.vae.encode(video[:, :, -MOTION_FRAMES:])[:, :, :motion_t]
            frames = to_frames(video)
            del video

            # 9. The state the next chunk starts from (arrays only: saved without pickle)
            state = {
                "chunk": np.array(chunk.index, np.int64),
                "num_frames": np.array(inputs.num_frames, np.int64),
                "generator": generator.get_state().numpy(),
            }
            if not last:
                state["motion"] = motion.cpu().numpy().copy()  # not a view of the tensor the next chunk reads
            yield ChunkOutput(chunk, len(chunks), frames, state)
