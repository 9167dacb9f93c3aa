"""Memory over a long video (issue 23): the real pipeline on the tiny model, chunk after chunk.

Two measures after each chunk. Host: the process's resident memory. Device: what ``torch.cuda.memory_allocated``
counts on a GPU; on a CPU pipeline, the bytes of every live torch tensor, because the pipeline keeps its host-side
data (the job's audio features) in numpy arrays and makes torch tensors only of what goes to its device. Every
tensor the pipeline holds between chunks has a shape fixed by the job's size, so the device measure must not move
at all from chunk to chunk, nor from a 10 s job to a 90 s one.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from infinitetalk.config import Settings
from infinitetalk.engines import load_engine
from infinitetalk.engines.neural.engine import NeuralEngine
from infinitetalk.engines.neural.pipeline import (
    DEFAULT_PROMPT,
    NEGATIVE_PROMPT,
    InfiniteTalkPipeline,
    PipelineInputs,
    SamplingOptions,
)
from infinitetalk.errors import WontFit
from infinitetalk.media.video import Mp4Writer, prefetched, timeline_frames

SIZE = 16  # the smallest output the pipeline takes; the VAE's per-frame work is what a chunk costs here
OPTS = SamplingOptions(steps=1, color_correction=0.0)
LONG = 81 + 72 * 30  # 31 chunks: 2241 frames, 89.6 s
SHORT = 250  # 10 s: 4 chunks
#: Resident memory may move this much from chunk 3 to chunk 30. Allocator bookkeeping moves it by a few KiB;
#: keeping any one per-chunk array for 27 chunks moves it more (the smallest, a chunk's 81 uint8 frames at
#: 16x16, is 61 KiB: 1.6 MiB over 27 chunks; its float decode four times that).
RSS_MARGIN = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _device_bytes(pipe: InfiniteTalkPipeline) -> int:
    if pipe.device.type == "cuda":
        return torch.cuda.memory_allocated(pipe.device)
    gc.collect()  # garbage in a reference cycle is not held: it would be freed on the next collection
    storages = {}
    for obj in gc.get_objects():
        # Plain tensors and parameters only: other tests of the same process may leave tensors with no data (the
        # planner's fake and meta ones) alive. type(), not isinstance: isinstance reads __class__, which some of
        # torch's deprecated objects warn on.
        if type(obj) in (torch.Tensor, torch.nn.Parameter) and obj.device.type != "meta":
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _speech(frames: int) -> np.ndarray:
    """A voiced tone in syllables with pauses: loud enough for the loudness step to measure it."""
    t = np.arange(frames * 640) / 16000
    syllables = np.clip(np.sin(2 * np.pi * 3.0 * t), 0.0, None) * (np.sin(2 * np.pi * 0.4 * t) > -0.5)
    return (0.3 * syllables * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def pipe(tiny_weights) -> Iterator[InfiniteTalkPipeline]:
    # One thread: the tiny VAE's convolutions are too small to share, and two threads on a busy machine spend
    # ten times the CPU time waiting for each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    engine = NeuralEngine.from_pretrained(tiny_weights.root, device="cpu", options=OPTS)
    # the text cache belongs to the engine, not to a job: filled before anything is measured
    engine.pipeline.encode_prompt(DEFAULT_PROMPT)
    engine.pipeline.encode_prompt(NEGATIVE_PROMPT)
    yield engine.pipeline
    torch.set_num_threads(threads)


def _run(pipe: InfiniteTalkPipeline, inputs: PipelineInputs, chunks: int,
         measure_device: Callable[[int], bool]) -> tuple[list[int], dict[int, int]]:
    """Resident memory after each of the first ``chunks`` chunks, and the device bytes after the chosen ones."""
    rss: list[int] = []
    device: dict[int, int] = {}
    run = pipe.generate_chunks(inputs, SIZE, SIZE, OPTS)
    for out in run:
        number = out.chunk.index + 1
        del out  # the caller writes a chunk's frames and lets them go
        rss.append(_rss())
        if measure_device(number):
            device[number] = _device_bytes(pipe)
        if number == chunks:
            break
    run.close()
    return rss, device


def _i2v(frames: int) -> PipelineInputs:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    portrait = np.stack([x * 12, y * 10, (x + y) * 6], -1).astype(np.uint8)
    return PipelineInputs(audio=[_speech(frames)], num_frames=frames, seed=7, image=portrait)


def _v2v(frames: int, folder) -> PipelineInputs:
    """A real MP4 as long as the speech, decoded as render decodes it: lazily, a few frames ahead, on a thread."""
    path = folder / "source.mp4"
    y, x = np.mgrid[0:32, 0:32]
    with Mp4Writer(path, width=32, height=32, fps=25) as writer:
        for i in range(frames):
            writer.write(np.stack([(x * 8 + i) % 256, y * 8, (x + y + 2 * i) % 256], -1).astype(np.uint8))
    source = prefetched(timeline_frames(path, fps=25, num_frames=frames, width=SIZE, height=SIZE))
    return PipelineInputs(audio=[_speech(frames)], num_frames=frames, seed=7, video=source)


def test_device_memory_does_not_depend_on_the_length(pipe) -> None:
    held = {}
    for frames in (SHORT, LONG):
        before = _device_bytes(pipe)
        _, device = _run(pipe, _i2v(frames), 1, lambda n: True)
        held[frames] = device[1] - before
    # the 90 s job's audio features would add 2241 rows x 2 layers x 16 floats (280 KiB) over the 10 s job's
    assert held[LONG] == held[SHORT], f"a 90 s job holds {held[LONG] - held[SHORT]} more device bytes than a 10 s one"


@pytest.mark.slow  # ~13-17 s CPU each: 31 chunks of the tiny model (the VAE's per-frame work dominates)
@pytest.mark.parametrize("mode", ["i2v", "v2v"])
def test_memory_flat_over_31_chunks(pipe, mode, tmp_path) -> None:
    inputs = _i2v(LONG) if mode == "i2v" else _v2v(LONG, tmp_path)
    rss, device = _run(pipe, inputs, 31, lambda n: n in (3, 30, 31))
    assert len(rss) == 31
    growth = max(rss[2:]) - rss[2]
    assert growth < RSS_MARGIN, f"resident memory grew {growth / 2**20:.2f} MiB from chunk 3 to chunk {rss.index(max(rss)) + 1}"
    assert device[30] == device[3], f"device bytes after chunk 30: {device[30]}, after chunk 3: {device[3]}"
    assert device[31] <= device[3]  # the last chunk carries no motion latents over


def test_text_embeddings_kept_do_not_grow_with_the_jobs_served(pipe) -> None:
    # a server sees a new prompt in many jobs; each prompt's embedding is 4 MiB of device memory at full size
    def held_after(prompts: range) -> int:
        for i in prompts:
            pipe.encode_prompt(f"a person talks to the camera {i}")
            pipe.encode_prompt(NEGATIVE_PROMPT)
        return _device_bytes(pipe)

    after_few = held_after(range(8))
    assert held_after(range(8, 40)) == after_few
    assert torch.equal(pipe.encode_prompt("a person talks to the camera 3"),
                       pipe.text_encoder("a person talks to the camera 3"))  # an evicted prompt comes back the same


@pytest.mark.slow  # ~5 s CPU: the tiny model's memory plan with its VAE trace
def test_a_declared_gpu_memory_refuses_a_cpu_start_up(tiny_weights, monkeypatch) -> None:
    # a CPU deployment that declares its target card is refused as that card would refuse it
    monkeypatch.setenv("INFINITETALK_NEURAL_GPU_MEMORY_GB", "0.5")
    settings = Settings()
    assert settings.neural_gpu_memory_gb == 0.5
    with pytest.raises(WontFit, match="needs about"):
        load_engine(settings, name="neural", weights_dir=tiny_weights.root, warm=False)
