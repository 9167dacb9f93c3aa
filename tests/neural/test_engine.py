"""End to end through the real loader, pipeline and MP4 encoder with tiny weights (CPU, 32x32 frames)."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from infinitetalk.engines.base import CancelToken, Engine, EngineJob, Speaker
from infinitetalk.engines.neural.configs import TINY
from official_oracles import official_color

from infinitetalk.engines.neural.engine import NeuralEngine, cover_crop, speaker_masks
from infinitetalk.engines.neural.pipeline import NEGATIVE_PROMPT, PipelineInputs, SamplingOptions, to_tensor
from infinitetalk.errors import Canceled, InvalidRequest
from infinitetalk.media.video import Mp4Writer
from infinitetalk.schema import Mode

FRAMES = 100  # two chunks: 81 + 19 new frames


def _audio(frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(frames * 640) / 16000
    return (0.2 * np.sin(2 * np.pi * 200 * t) * rng.uniform(0.5, 1.0, t.size)).astype(np.float32)


def _portrait() -> np.ndarray:
    y, x = np.mgrid[0:48, 0:40]
    return np.stack([x * 6, y * 5, (x + y) * 3], -1).astype(np.uint8)


def _job(seed: int = 3, frames: int = FRAMES, **kw) -> EngineJob:
    args = dict(
        mode=Mode.IMAGE_TO_VIDEO,
        speakers=[Speaker(audio=_audio(frames))],
        width=32,
        height=32,
        fps=25,
        num_frames=frames,
        seed=seed,
        image=_portrait(),
    )
    args.update(kw)
    return EngineJob(**args)


@pytest.fixture(scope="module")
def engine(tiny_weights) -> NeuralEngine:
    return NeuralEngine.from_pretrained(tiny_weights.root, device="cpu", options=SamplingOptions(steps=2))


@pytest.mark.slow  # the tiny model end to end: over a minute on 2 cores
def test_image_to_video_two_chunks_into_mp4(engine, tmp_path) -> None:
    assert isinstance(engine, Engine)
    seen = []
    out = tmp_path / "out.mp4"
    with Mp4Writer(out, width=32, height=32, fps=25, audio=None, sample_rate=16000) as writer:
        for frame in engine.generate(_job(), lambda f, s: seen.append((f, s)), CancelToken()):
            assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8
            writer.write(frame)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == FRAMES
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert ("chunk 2/2, step 2/2" in seen[-1][1]) and len([s for _, s in seen if "step" in s]) == 4


@pytest.mark.slow  # the tiny model end to end: over a minute on 2 cores
def test_deterministic_for_a_seed(engine) -> None:
    a = np.stack(list(engine.generate(_job(seed=5, frames=30), lambda *_: None, CancelToken())))
    b = np.stack(list(engine.generate(_job(seed=5, frames=30), lambda *_: None, CancelToken())))
    c = np.stack(list(engine.generate(_job(seed=6, frames=30), lambda *_: None, CancelToken())))
    assert a.shape == (30, 32, 32, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def _run_recording(pipe, inputs: PipelineInputs, opts: SamplingOptions, monkeypatch):
    """Generate, recording every transformer input, every float decode and every chunk's uint8 frames."""
    calls: list[torch.Tensor] = []
    decoded: list[torch.Tensor] = []
    chunks: dict[int, np.ndarray] = {}
    decode = pipe.vae.decode

    def recording_decode(latents: torch.Tensor) -> torch.Tensor:
        decoded.append(decode(latents))
        return decoded[-1]

    monkeypatch.setattr(pipe.vae, "decode", recording_decode)
    handle = pipe.transformer.register_forward_pre_hook(lambda m, args: calls.append(args[0].detach().clone()))
    try:
        out = np.stack(list(pipe.generate(inputs, 32, 32, opts, on_chunk=lambda i, f: chunks.__setitem__(i, f))))
    finally:
        handle.remove()
    return out, calls, decoded, chunks


@pytest.mark.slow  # the tiny model end to end: over a minute on 2 cores
def test_motion_frames_carried_over(engine, monkeypatch) -> None:
    pipe = engine.pipeline
    inputs = PipelineInputs(audio=[_audio(FRAMES)], num_frames=FRAMES, seed=1, image=cover_crop(_portrait(), 32, 32))
    opts = SamplingOptions(steps=2, color_correction=0.0)
    out, calls, decoded, chunks = _run_recording(pipe, inputs, opts, monkeypatch)
    assert len(calls) == 4  # 2 chunks x 2 steps, guidance passes batched into one forward
    assert calls[0].shape[0] == 3  # cond, no text, no audio
    # chunk 2 starts from the VAE latents of chunk 1's last 9 decoded frames - the float decode, clamped to
    # [-1, 1], as wan/multitalk.py encodes ``videos[:, :, -9:]`` - re-imposed at every step
    motion = pipe.vae.encode(decoded[0][:, :, -9:])[:, :, :3]
    for step_input in calls[2:]:
        assert torch.allclose(step_input[0, :16, :3], motion, atol=1e-5)
    from_uint8 = torch.cat([to_tensor(f, pipe.device)[:, :, None] for f in chunks[0][-9:]], dim=2)
    assert not torch.allclose(pipe.vae.encode(from_uint8)[:, :, :3], motion, atol=1e-5)  # what we did before
    # chunk 1 conditions on the portrait's latent only
    _, cond = pipe.condition(inputs.image, 81)
    assert torch.allclose(calls[0][0, :16, :1], cond[:, 4:, :1], atol=1e-5)
    # output = all of chunk 1, then chunk 2 without its 9 re-generated frames, rounded to uint8
    assert np.array_equal(out[:81], chunks[0])
    assert np.array_equal(out[81:], chunks[1][9 : 9 + FRAMES - 81])
    expected = ((decoded[0][0].permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    assert np.array_equal(chunks[0], expected)


@pytest.mark.slow  # the tiny model end to end: over a minute on 2 cores
def test_color_correction_on_by_default_and_before_the_motion_frames(engine, monkeypatch) -> None:
    """The official command line corrects every decoded chunk at strength 1.0 towards the first reference
    frame, and the next chunk's motion frames are taken from the corrected float frames."""
    assert SamplingOptions().color_correction == 1.0 and engine.options.color_correction == 1.0
    pipe = engine.pipeline
    portrait = cover_crop(_portrait(), 32, 32)
    inputs = PipelineInputs(audio=[_audio(FRAMES)], num_frames=FRAMES, seed=1, image=portrait)
    out, calls, decoded, chunks = _run_recording(pipe, inputs, engine.options, monkeypatch)
    frames01 = ((decoded[0][0].permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1).numpy()
    corrected = official_color(frames01, portrait.astype(np.float32) / 255, 1.0)  # [81, H, W, 3] in [0, 1]
    corrected_video = torch.from_numpy(corrected * 2 - 1).permute(3, 0, 1, 2)[None].float()
    motion = pipe.vae.encode(corrected_video[:, :, -9:])[:, :, :3]
    assert torch.allclose(calls[2][0, :16, :3], motion, atol=1e-4)
    assert np.abs(out[:81].astype(int) - np.round(corrected * 255).astype(int)).max() <= 1


@pytest.mark.slow  # the tiny model end to end: over a minute on 2 cores
def test_video_to_video_uses_source_frame_per_chunk(engine) -> None:
    source = [np.full((40, 48, 3), (i * 2) % 256, np.uint8) for i in range(FRAMES)]
    calls: list[torch.Tensor] = []
    pipe = engine.pipeline
    handle = pipe.transformer.register_forward_pre_hook(lambda m, args: calls.append(args[0].detach().clone()))
    try:
        job = _job(mode=Mode.VIDEO_TO_VIDEO, image=None, video_frames=lambda: iter(source))
        frames = list(engine.generate(job, lambda *_: None, CancelToken()))
    finally:
        handle.remove()
    assert len(frames) == FRAMES
    _, cond72 = pipe.condition(cover_crop(source[72], 32, 32), 81)
    _, cond0 = pipe.condition(cover_crop(source[0], 32, 32), 81)
    assert torch.allclose(calls[0][0, 20:], cond0[0, 4:], atol=1e-5)
    assert torch.allclose(calls[2][0, 20:], cond72[0, 4:], atol=1e-5)  # chunk 2 starts at frame 72


@pytest.mark.slow  # the tiny model end to end: over a minute on 2 cores
def test_cancel_between_steps(engine) -> None:
    cancel = CancelToken()

    def progress(fraction: float, stage: str) -> None:
        if "step 1/" in stage:
            cancel.cancel()

    with pytest.raises(Canceled):
        list(engine.generate(_job(frames=20), progress, cancel))


def test_two_speakers_need_multi_weights(engine) -> None:
    job = _job(frames=20, speakers=[Speaker(audio=_audio(20)), Speaker(audio=_audio(20, 1))])
    with pytest.raises(InvalidRequest, match="multi"):
        list(engine.generate(job, lambda *_: None, CancelToken()))


@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.slow  # the tiny model end to end: over a minute on 2 cores
def test_two_speakers_null_audio_is_one_person(tiny_weights, batch: bool) -> None:
    """wan/multitalk.py: the no-audio guidance pass gets ``torch.zeros_like(audio_embs)[-1:]``, ONE person's zeros."""
    multi = NeuralEngine.from_pretrained(
        tiny_weights.root, device="cpu", variant="multi", options=SamplingOptions(steps=1, batch_passes=batch)
    )
    audio_args: list = []
    handle = multi.pipeline.transformer.register_forward_pre_hook(lambda m, args: audio_args.append(args[4]))
    try:
        job = _job(frames=20, speakers=[Speaker(audio=_audio(20)), Speaker(audio=_audio(20, 1))])
        frames = list(multi.generate(job, lambda *_: None, CancelToken()))
    finally:
        handle.remove()
    assert len(frames) == 20
    passes = audio_args[0] if batch else [a[0] for a in audio_args]  # one batched call, or three of one
    assert [tuple(a.shape[:2]) for a in passes] == [(2, 81), (2, 81), (1, 81)]  # cond, no text, no audio
    assert torch.equal(passes[0], passes[1]) and not passes[0].eq(0).all()
    assert passes[2].eq(0).all()


def _two(**kw) -> EngineJob:
    return _job(frames=20, width=160, height=96, image=np.zeros((96, 160, 3), np.uint8), **kw)


def test_speaker_masks_official_default() -> None:
    """No boxes: the official ``face_scale`` 0.05 boxes on each half, plus the background. By hand for 160x96
    (tokens 10x6, each taking the pixel at its patch's top-left corner): rows int(4.8)=4 .. int(91.2)=91,
    left columns int(80*.05)=4 .. int(80*.95)=76, right int(4+80)=84 .. int(76+80)=156."""
    job = _two(speakers=[Speaker(audio=_audio(20)), Speaker(audio=_audio(20, 1))])
    masks = speaker_masks(job, 6, 10).view(3, 6, 10)
    p1, p2 = torch.zeros(6, 10), torch.zeros(6, 10)
    p1[1:6, 1:5] = 1  # pixel rows 16..80 and columns 16..64 lie inside the left box
    p2[1:6, 6:10] = 1  # columns 96..144 inside the right box; column 80 (token 5) in neither
    assert torch.equal(masks[0], p1) and torch.equal(masks[1], p2)
    assert torch.equal(masks[2], 1 - p1 - p2)
    assert masks[2].sum() == 20  # row 0, column 0 and column 5


def test_speaker_masks_from_boxes_and_the_official_bbox_order() -> None:
    """Our boxes are x0, y0, x1, y1 with x the column; the official JSON's bbox puts the row first."""
    from infinitetalk.schema import BBox

    left, right = BBox(x0=20, y0=10, x1=70, y1=60), BBox(x0=90, y0=0, x1=160, y1=96)
    job = _two(speakers=[Speaker(audio=_audio(20), bbox=left), Speaker(audio=_audio(20, 1), bbox=right)])
    masks = speaker_masks(job, 6, 10).view(3, 6, 10)
    official = torch.zeros(2, 96, 160)  # human_mask[int(x_min):int(x_max), int(y_min):int(y_max)] = 1
    for i, (x_min, y_min, x_max, y_max) in enumerate([(10, 20, 60, 70), (0, 90, 96, 160)]):
        official[i, x_min:x_max, y_min:y_max] = 1
    assert torch.equal(masks[:2], official[:, ::16, ::16])  # nearest to latents, then to tokens
    assert masks[0].sum() == 9 and masks[1].sum() == 6 * 4  # rows 1..3 x columns 2..4; columns 6..9


def test_official_negative_prompt() -> None:
    # sample_neg_prompt of wan/configs/wan_multitalk_14B.py, the config of task infinitetalk-14B
    assert NEGATIVE_PROMPT == (
        "bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
        "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
        "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, "
        "still picture, messy background, three legs, many people in the background, walking backwards"
    )


def test_color_correction_out_of_range_is_refused(engine) -> None:
    with pytest.raises(InvalidRequest, match="color_correction"):
        list(engine.generate(_job(frames=20, extras={"color_correction": 1.5}), lambda *_: None, CancelToken()))


@pytest.mark.slow  # the tiny model end to end: over a minute on 2 cores
def test_two_pass_mode_from_job_extras(engine) -> None:
    calls: list[int] = []
    handle = engine.pipeline.transformer.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    try:
        job = _job(frames=20, extras={"steps": 1, "text_scale": 1.0, "audio_scale": 2.0})
        assert len(list(engine.generate(job, lambda *_: None, CancelToken()))) == 20
    finally:
        handle.remove()
    assert calls == [2]  # one step, cond + no-audio batched


@pytest.mark.slow  # the tiny model end to end: over a minute on 2 cores
def test_offload_gives_the_same_frames(tiny_weights) -> None:
    # Group offload streams blocks between CPU and the compute device; here both are the CPU,
    # so this checks the hooks leave the results alone (passes then run one at a time).
    opts = SamplingOptions(steps=1, batch_passes=False)
    plain = NeuralEngine.from_pretrained(tiny_weights.root, device="cpu", options=opts)
    offloaded = NeuralEngine.from_pretrained(
        tiny_weights.root, device="cpu", offload=True, options=SamplingOptions(steps=1)
    )
    assert offloaded.options.batch_passes is False
    a = np.stack(list(plain.generate(_job(frames=20), lambda *_: None, CancelToken())))
    b = np.stack(list(offloaded.generate(_job(frames=20), lambda *_: None, CancelToken())))
    assert np.array_equal(a, b)


def test_load_engine_picks_neural_when_weights_are_configured(tiny_weights) -> None:
    """What `generate --weights DIR` and the server (INFINITETALK_WEIGHTS_DIR) do with engine 'auto'."""
    from infinitetalk.config import Settings
    from infinitetalk.engines import load_engine

    assert load_engine(Settings(weights_dir=tiny_weights.root)).name == "neural"
    assert load_engine(Settings()).name == "preview"


@pytest.mark.slow  # the tiny model end to end: over a minute on 2 cores
def test_speed_settings_reach_the_engine(tiny_weights) -> None:
    """INFINITETALK_NEURAL_QUANTIZE / _STEP_CACHE: int8 block linears, and a step cache on the many-step jobs only."""
    from infinitetalk.config import Settings
    from infinitetalk.engines import load_engine
    from infinitetalk.engines.neural.caching import cache_stats

    engine = load_engine(Settings(weights_dir=tiny_weights.root, neural_quantize="int8",
                                  neural_step_cache="first_block", neural_step_cache_threshold=0.5))
    transformer = engine.pipeline.transformer
    assert type(transformer.blocks[0].attn1.to_q.weight).__module__.startswith("torchao")  # quantized
    assert type(transformer.audio_proj.proj1.weight) is torch.nn.Parameter  # kept precise
    engine.options = SamplingOptions(steps=12)
    frames = list(engine.generate(_job(frames=5), lambda *_: None, CancelToken()))
    assert len(frames) == 5 and cache_stats(engine.pipeline.transformer)["block_skips"] > 0
    engine.options = SamplingOptions(steps=2)  # the fast mode: no cache
    list(engine.generate(_job(frames=5), lambda *_: None, CancelToken()))
    assert not engine.pipeline.transformer.is_cache_enabled


def test_the_fast_mode_setting_loads_its_lora_and_samples_four_steps(tiny_weights, tmp_path) -> None:
    """INFINITETALK_NEURAL_MODE=fast + _NEURAL_LORA (a name in the weights folder's loras/): the LoRA is merged,
    and jobs sample the official lightx2v settings (4 steps, shift 2 at every size, audio guidance only)."""
    from safetensors.torch import save_file

    from infinitetalk.config import Settings
    from infinitetalk.engines import load_engine

    g = torch.Generator().manual_seed(3)
    down, up = torch.randn(2, TINY.dim, generator=g), torch.randn(TINY.dim, 2, generator=g)
    (tiny_weights.root / "loras").mkdir(exist_ok=True)
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": down,
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": up},
              str(tiny_weights.root / "loras" / "distill.safetensors"))
    try:
        plain = load_engine(Settings(weights_dir=tiny_weights.root))
        fast = load_engine(Settings(weights_dir=tiny_weights.root, neural_mode="fast", neural_lora="distill.safetensors",
                                    neural_lora_scale=0.5))
    finally:
        (tiny_weights.root / "loras" / "distill.safetensors").unlink()
    merged = fast.pipeline.transformer.blocks[0].attn1.to_q.weight
    assert torch.allclose(merged, plain.pipeline.transformer.blocks[0].attn1.to_q.weight + 0.5 * up @ down, atol=1e-6)
    for size in (640, 960):  # 480p and 720p
        options = fast._options(_job(frames=5, width=size, height=size))
        assert (options.steps, options.shift, options.guidance.passes) == (4, 2.0, 2)
    assert plain._options(_job(frames=5, width=640, height=640)).shift == 7.0
    assert plain._options(_job(frames=5, width=960, height=960)).shift == 11.0  # the default follows the size


@pytest.mark.parametrize(
    ("values", "message"),
    [({"neural_mode": "fast-1p"}, "neural_mode=fast-1p samples 4 steps: it needs a step-distilled LoRA"),
     ({"neural_lora": "missing.safetensors"}, "neural_lora: no file missing.safetensors, here or in the weights")],
)
def test_lora_settings_that_cannot_work_stop_start_up(tiny_weights, values: dict, message: str) -> None:
    from infinitetalk.config import Settings
    from infinitetalk.engines import load_engine

    with pytest.raises(InvalidRequest, match=message):
        load_engine(Settings(weights_dir=tiny_weights.root, **values))
