"""``NeuralEngine``: the Engine protocol over the InfiniteTalk pipeline, loaded from a local weights folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from infinitetalk.engines.base import CancelToken, ChunkResult, EngineJob, EngineState, ProgressCallback
from infinitetalk.engines.neural.audio import AudioEncoder
from infinitetalk.engines.neural.caching import StepCache, disable_step_cache, enable_step_cache
from infinitetalk.engines.neural.pipeline import SAMPLING_MODES, InfiniteTalkPipeline, PipelineInputs, SamplingOptions
from infinitetalk.engines.neural.plan import FitCheck, Setting, card_gib, config_from_headers, sampling_of, vae_dim_of
from infinitetalk.engines.neural.sampler import Guidance
from infinitetalk.engines.neural.speed import SpeedOptions, apply_speed
from infinitetalk.engines.neural.text_clip import ImageEncoder, TextEncoder, load_clip, load_t5
from infinitetalk.engines.neural.vae import VideoVAE, load_vae
from infinitetalk.engines.neural.weights import WeightsLayout, load_transformer
from infinitetalk.errors import InvalidRequest
from infinitetalk.schema import Mode


def cover_crop(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to cover width x height, then centre-crop (the buckets' rule)."""
    h, w = frame.shape[:2]
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(np.ascontiguousarray(frame[..., :3]), (nw, nh), interpolation=interp)
    y, x = (nh - height) // 2, (nw - width) // 2
    return resized[y : y + height, x : x + width]


#: Margin of the official default speaker boxes (``face_scale`` in ``wan/multitalk.py``).
FACE_SCALE = 0.05


def default_speaker_boxes(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """The official boxes when none are given: (row0, row1, col0, col1) for the left and the right
    person, each half of the frame shrunk by 5% on every side (the official arithmetic, truncated)."""
    r0, r1 = int(height * FACE_SCALE), int(height * (1 - FACE_SCALE))
    half = width // 2
    return [
        (r0, r1, int(half * FACE_SCALE), int(half * (1 - FACE_SCALE))),
        (r0, r1, int(half * FACE_SCALE + half), int(half * (1 - FACE_SCALE) + half)),
    ]


def _token_mask(pixels: np.ndarray, stride: int) -> torch.Tensor:
    """Pixel mask -> token mask as the official code resizes it: nearest to the latent grid, then
    nearest to the token grid, i.e. each token takes the pixel at its patch's top-left corner.
    A mask that misses every such pixel (a small face) takes any pixel of the patch instead."""
    sampled = pixels[::stride, ::stride] > 0
    if not sampled.any():
        h, w = pixels.shape[0] // stride, pixels.shape[1] // stride
        sampled = (pixels[: h * stride, : w * stride] > 0).reshape(h, stride, w, stride).any(axis=(1, 3))
    return torch.from_numpy(np.ascontiguousarray(sampled)).flatten()


def speaker_masks(job: EngineJob, tokens_h: int, tokens_w: int) -> torch.Tensor | None:
    """[3, tokens] person-1 / person-2 / background masks over one latent frame's tokens (two speakers only).

    Each person from their mask, else their box (``x0, y0, x1, y1``: x is the column; the
    official JSON's ``bbox`` puts the row first), else the official default box. The
    background is every token outside both people. All in output pixels.
    """
    if len(job.speakers) < 2:
        return None
    h, w = job.height, job.width
    stride = h // tokens_h
    defaults = default_speaker_boxes(h, w)
    people = []
    for i, sp in enumerate(job.speakers[:2]):
        m = np.zeros((h, w), np.uint8)
        if sp.mask is not None:
            m = sp.mask if sp.mask.shape == (h, w) else cv2.resize(sp.mask, (w, h), interpolation=cv2.INTER_NEAREST)
        elif sp.bbox is not None:
            m[int(sp.bbox.y0) : int(sp.bbox.y1), int(sp.bbox.x0) : int(sp.bbox.x1)] = 1
        else:
            r0, r1, c0, c1 = defaults[i]
            m[r0:r1, c0:c1] = 1
        people.append(_token_mask(m, stride))
    background = ~(people[0] | people[1])
    return torch.stack([people[0], people[1], background]).float()


class NeuralEngine:
    name = "neural"

    def __init__(
        self, pipeline: InfiniteTalkPipeline, *, variant: str = "single", options: SamplingOptions | None = None,
        step_cache: StepCache | None = None, distilled: bool = False, fit_check: FitCheck | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.variant = variant
        self.options = options or SamplingOptions()
        #: A step-distilled LoRA is merged, so a job may ask for the 4-step mode (``extras["sampling"]="fast"``).
        self.distilled = distilled
        self.step_cache = step_cache
        self._cached_steps: int | None = None  # the step count the cache is set up for; None: off
        #: Refuses a job the card's memory cannot hold before it starts (None: nothing to check, a CPU).
        self.fit_check = fit_check

    @classmethod
    def from_pretrained(
        cls,
        weights_dir: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        offload: bool = False,
        variant: str = "single",
        loras: dict[Path, float] | None = None,
        options: SamplingOptions | None = None,
        speed: SpeedOptions | None = None,
        step_cache: StepCache | None = None,
        gpu_memory_gb: float | None = None,
    ) -> NeuralEngine:
        """Load every part from a weights folder (see ``WeightsLayout``).

        ``offload``: keep the transformer's blocks in CPU memory and stream them to the GPU one
        at a time (diffusers group offload), for 24-48 GB cards; the passes then run one by one.
        ``speed``: FP8/int8, the attention backend and regional compile (``speed.py``), checked before anything
        is loaded. ``step_cache``: a block cache for the many-step modes (``caching.py``).
        ``gpu_memory_gb``: the card's memory (default: the CUDA device's; none on a CPU): settings whose
        planned peak (``plan.py``) exceeds it are refused here, before any weights are read, and so are jobs.
        """
        layout = WeightsLayout(Path(weights_dir))
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        fit_check = _fit_check(layout, device, gpu_memory_gb, variant, offload, options, speed)
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        home = torch.device("cpu") if offload else device
        transformer = load_transformer(layout, variant=variant, device=home, dtype=dtype, loras=loras)
        if offload:
            transformer.enable_group_offload(
                onload_device=device,
                offload_device=torch.device("cpu"),
                offload_type="block_level",
                num_blocks_per_group=1,
            )
            for name, module in transformer.named_children():
                if name != "blocks":  # the small parts live on the GPU
                    module.to(device)
        apply_speed(transformer, speed or SpeedOptions(), device)
        vae = VideoVAE(load_vae(layout.require(layout.vae, "Wan VAE"), device))
        text = TextEncoder(
            load_t5(layout.require(layout.t5, "T5 text encoder"), device, dtype),
            layout.require(layout.tokenizer, "T5 tokenizer"),
        )
        image = ImageEncoder(load_clip(layout.require(layout.clip, "CLIP image encoder"), device, dtype))
        # On the CPU, as the official script runs it: its whole-track pass peaks with the speech's length (about
        # 16 MiB per second of speech on wav2vec2-base), a spike the card would otherwise take at each job's start.
        audio = AudioEncoder.from_folder(layout.require(layout.wav2vec, "wav2vec2 folder"), "cpu")
        pipe = InfiniteTalkPipeline(transformer, vae, text, image, audio, device)
        opts = options or SamplingOptions()
        if offload:
            opts = SamplingOptions(opts.steps, opts.shift, opts.guidance, opts.color_correction, batch_passes=False)
        return cls(pipe, variant=variant, options=opts, step_cache=step_cache, distilled=bool(loras),
                   fit_check=fit_check)

    def _mode(self, job: EngineJob) -> SamplingOptions:
        """The engine's own mode, or the fast one for a job that asks for it (``extras["sampling"]``) on an
        engine with a step-distilled LoRA; without the LoRA 4 steps would be noise, so the job keeps this mode."""
        fast = SAMPLING_MODES["fast"]
        if job.extras.get("sampling") != "fast" or not self.distilled or self.options.steps <= fast.steps:
            return self.options
        return SamplingOptions(fast.steps, fast.shift, fast.guidance, self.options.color_correction,
                               batch_passes=self.options.batch_passes)

    def _options(self, job: EngineJob) -> SamplingOptions:
        """Per-job overrides from ``job.extras`` (sampling, then steps, shift, text_scale, audio_scale,
        color_correction)."""
        o, e = self._mode(job), job.extras
        color = float(e.get("color_correction", o.color_correction))
        if not 0.0 <= color <= 1.0:
            raise InvalidRequest(f"color_correction must be between 0 and 1, got {color}")
        guidance = Guidance(
            float(e.get("text_scale", o.guidance.text_scale)), float(e.get("audio_scale", o.guidance.audio_scale))
        )
        return SamplingOptions(
            steps=int(e.get("steps", o.steps)),
            shift=float(e.get("shift", self._shift(job, o))),
            guidance=guidance,
            color_correction=color,
            batch_passes=o.batch_passes,
        )

    def _shift(self, job: EngineJob, mode: SamplingOptions) -> float:
        """The default shift follows the size (7 at 480p, 11 at 720p, the official settings); one chosen (a fast
        mode's 2) is kept at every size."""
        if mode.shift != SamplingOptions.shift or job.height * job.width <= 800 * 800:
            return mode.shift
        return 11.0

    def generate(self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken) -> Iterator[np.ndarray]:
        for chunk in self.generate_chunks(job, progress, cancel):
            yield from chunk.frames

    def generate_chunks(
        self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken, resume: EngineState | None = None
    ) -> Iterator[ChunkResult]:
        """The job's chunks (81 frames each; every chunk after the first adds 72 new ones) with their states.

        A state holds the next chunk's motion latents and the noise generator's state (see
        ``ChunkOutput.state``); resuming from it makes the frames an uninterrupted run makes.
        """
        options = self._options(job)
        if self.fit_check is not None:
            self.fit_check.job(job.width, job.height, len(job.speakers), sampling_of(options))
        self._cache_for(options.steps)
        chunks = self.pipeline.generate_chunks(
            self._inputs(job), job.height, job.width, options, progress, cancel, resume
        )
        for out in chunks:
            yield ChunkResult(out.chunk.index, out.count, np.ascontiguousarray(out.new_frames), out.state)

    def _cache_for(self, steps: int) -> None:
        """The step cache on for a many-step job (set up for its step count), off for the few-step modes, where
        every step changes the latents too much to reuse a block's output."""
        wanted = self.step_cache is not None and steps >= StepCache.MIN_STEPS
        if wanted and self._cached_steps != steps:
            enable_step_cache(self.pipeline.transformer, self.step_cache.kind, self.step_cache.threshold, steps)
        elif not wanted and self._cached_steps is not None:
            disable_step_cache(self.pipeline.transformer)
        self._cached_steps = steps if wanted else None

    def _inputs(self, job: EngineJob) -> PipelineInputs:
        if len(job.speakers) == 2 and self.variant != "multi":
            raise InvalidRequest(
                "two speakers need the InfiniteTalk 'multi' weights; start the engine with variant='multi'"
            )
        if job.fps != 25:
            raise InvalidRequest(f"the neural engine makes 25 fps video (the model's training rate), got fps={job.fps}")
        w, h = job.width, job.height
        if job.mode == Mode.VIDEO_TO_VIDEO:
            if job.video_frames is None:
                raise InvalidRequest("video-to-video needs a source video")
            image, video = None, (cover_crop(f, w, h) for f in job.video_frames())
        else:
            if job.image is None:
                raise InvalidRequest("image-to-video needs a portrait image")
            image, video = cover_crop(job.image, w, h), None
        inputs = PipelineInputs(
            audio=[sp.audio for sp in job.speakers],
            num_frames=job.num_frames,
            seed=job.seed,
            prompt=job.prompt,
            image=image,
            video=video,
            ref_masks=speaker_masks(job, h // 16, w // 16),
        )
        if inputs.ref_masks is not None:
            inputs.ref_masks = inputs.ref_masks.to(self.pipeline.device)
        return inputs


def _fit_check(layout: WeightsLayout, device: torch.device, gpu_memory_gb: float | None, variant: str,
               offload: bool, options: SamplingOptions | None, speed: SpeedOptions | None) -> FitCheck | None:
    """The engine's memory check, run once for its settings (raises ``WontFit``); None where there is no card."""
    import torch.distributed as dist

    memory = gpu_memory_gb if gpu_memory_gb is not None else card_gib(device)
    cfg = config_from_headers(layout, variant)
    if memory is None or cfg is None:
        return None
    gpus = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    setting = Setting(sampling=sampling_of(options or SamplingOptions()), speakers=2 if variant == "multi" else 1,
                      offload=offload, quantize=(speed or SpeedOptions()).quantize, gpus=gpus)
    check = FitCheck(cfg, memory, setting, vae_dim_of(layout))
    check.start()
    return check


def load_engine(weights_dir: str | Path, **kwargs: object) -> NeuralEngine:
    """The entry ``infinitetalk.engines`` calls lazily (keeps torch out of preview-only processes)."""
    return NeuralEngine.from_pretrained(weights_dir, **kwargs)  # type: ignore[arg-type]
