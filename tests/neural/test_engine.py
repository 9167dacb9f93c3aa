"""End to end through the real loader, pipeline and MP4 encoder with tiny weights (CPU, 32x32 frames)."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from infinitetalk.engines.base import CancelToken, Engine, EngineJob, Speaker
from infinitetalk.engines.neural.engine import NeuralEngine, cover_crop
from infinitetalk.engines.neural.pipeline import PipelineInputs, SamplingOptions, to_tensor
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


def test_deterministic_for_a_seed(engine) -> None:
    a = np.stack(list(engine.generate(_job(seed=5, frames=30), lambda *_: None, CancelToken())))
    b = np.stack(list(engine.generate(_job(seed=5, frames=30), lambda *_: None, CancelToken())))
    c = np.stack(list(engine.generate(_job(seed=6, frames=30), lambda *_: None, CancelToken())))
    assert a.shape == (30, 32, 32, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_motion_frames_carried_over(engine) -> None:
    pipe = engine.pipeline
    chunks: dict[int, np.ndarray] = {}
    calls: list[torch.Tensor] = []
    handle = pipe.transformer.register_forward_pre_hook(lambda m, args: calls.append(args[0].detach().clone()))
    try:
        inputs = PipelineInputs(
            audio=[_audio(FRAMES)], num_frames=FRAMES, seed=1, image=cover_crop(_portrait(), 32, 32)
        )
        out = np.stack(
            list(pipe.generate(inputs, 32, 32, engine.options, on_chunk=lambda i, f: chunks.__setitem__(i, f)))
        )
    finally:
        handle.remove()
    assert len(calls) == 4  # 2 chunks x 2 steps, guidance passes batched into one forward
    assert calls[0].shape[0] == 3  # cond, no text, no audio
    # chunk 2 starts from the VAE latents of chunk 1's last 9 frames, re-imposed at every step
    tail = torch.cat([to_tensor(f, pipe.device)[:, :, None] for f in chunks[0][-9:]], dim=2)
    motion = pipe.vae.encode(tail)[:, :, :3]
    for step_input in calls[2:]:
        assert torch.allclose(step_input[0, :16, :3], motion, atol=1e-5)
    # chunk 1 conditions on the portrait's latent only
    _, cond = pipe.condition(inputs.image, 81)
    assert torch.allclose(calls[0][0, :16, :1], cond[:, 4:, :1], atol=1e-5)
    # output = all of chunk 1, then chunk 2 without its 9 re-generated frames
    assert np.array_equal(out[:81], chunks[0])
    assert np.array_equal(out[81:], chunks[1][9 : 9 + FRAMES - 81])


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


def test_two_speakers_with_multi_weights(tiny_weights) -> None:
    multi = NeuralEngine.from_pretrained(
        tiny_weights.root, device="cpu", variant="multi", options=SamplingOptions(steps=1)
    )
    job = _job(frames=20, speakers=[Speaker(audio=_audio(20)), Speaker(audio=_audio(20, 1))])
    frames = list(multi.generate(job, lambda *_: None, CancelToken()))
    assert len(frames) == 20


def test_two_pass_mode_from_job_extras(engine) -> None:
    calls: list[int] = []
    handle = engine.pipeline.transformer.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    try:
        job = _job(frames=20, extras={"steps": 1, "text_scale": 1.0, "audio_scale": 2.0})
        assert len(list(engine.generate(job, lambda *_: None, CancelToken()))) == 20
    finally:
        handle.remove()
    assert calls == [2]  # one step, cond + no-audio batched


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
