"""One job over 2 and 4 processes (gloo, CPU): the parallel forward equals the single-process one.

The ranks join as torchrun's ranks do (``launch.join_job``), build the same tiny model (same seed),
enable parallelism and run every case; rank 0 saves what it got. The parent computes each case on
one process and compares. fp32: the largest difference measured is 7e-7 on outputs up to ~2.4
(float sums in another order); ATOL holds it.
A rank that raises fails the test at once; one that hangs fails it after TIMEOUT_S.
"""

from __future__ import annotations

import pytest
import torch
from process_group import run_ranks

from infinitetalk.engines.neural.configs import TINY
from infinitetalk.engines.neural.parallel import disable_parallel, enable_parallel, frame_split
from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer

TIMEOUT_S = 120
ATOL = 5e-6
FRAMES = 5  # latent frames: 3 + 2 over two ranks, 2 + 1 + 1 + 1 over four
# Two speakers on a 3x4-token frame: person 1 top-left, person 2 top-right, the bottom row background.
MASKS = torch.tensor(
    [[1.0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0], [0] * 8 + [1.0] * 4]
)


def _model() -> InfiniteTalkTransformer:
    torch.manual_seed(0)
    return InfiniteTalkTransformer.from_model_config(TINY).eval()


def _case(name: str) -> tuple:
    """(hidden, t, text, clip, audio, masks) of one case; the guidance passes share their latents."""
    people, passes = (2, {"two": 1, "two_2passes": 2, "two_3passes": 3}[name]) if name.startswith("two") else (1, 1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 36, FRAMES, 6, 8, generator=g).expand(passes, -1, -1, -1, -1)
    t = torch.full((passes,), 500.0)
    text = torch.randn(passes, 512, TINY.text_dim, generator=g)
    clip = torch.randn(1, 5, TINY.image_dim, generator=g).expand(passes, -1, -1)
    audio = torch.randn(people, 4 * (FRAMES - 1) + 1, 5, TINY.audio_layers, TINY.audio_dim, generator=g)
    null = torch.zeros_like(audio[-1:])  # the official null-audio pass: one person's zeros, unrouted
    audios = {1: [audio], 2: [audio, null], 3: [audio, audio, null]}[passes]
    return x, t, text, clip, audios, MASKS if people == 2 else None


CASES = {
    "one": "auto",  # 2 ranks: Ulysses (2 heads over 2); 4 ranks: all-gather (2 heads do not split 4 ways)
    "one_allgather": "allgather",
    "two": "auto",
    "two_2passes": "auto",  # 2 ranks: one pass each, no sequence split; 4: two pass groups of two ranks
    "two_3passes": "auto",  # 3 passes do not divide over 2 or 4 ranks: all ranks split the sequence of all 3
}


def _rank(rank: int, out: str) -> None:
    model = _model()
    results = {}
    with torch.no_grad():
        for name, attention in CASES.items():
            enable_parallel(model, attention=attention)
            results[name] = model(*_case(name.removesuffix("_allgather")))
            disable_parallel(model)
    if rank == 0:
        torch.save(results, out)


@pytest.fixture(scope="module", params=[2, 4], ids=["2 ranks", "4 ranks"])
def parallel_results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("parallel") / "results.pt"
    run_ranks(_rank, (str(out),), world=request.param, timeout_s=TIMEOUT_S)
    return torch.load(out)


@pytest.fixture(scope="module")
def model() -> InfiniteTalkTransformer:
    return _model()


@pytest.mark.parametrize("name", list(CASES))
@torch.no_grad()
def test_parallel_forward_equals_one_process(parallel_results, model, name: str) -> None:
    expected = model(*_case(name.removesuffix("_allgather")))
    got = parallel_results[name]
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=0, atol=ATOL), (got - expected).abs().max()


def test_frames_split_on_boundaries_unevenly() -> None:
    assert frame_split(21, 2) == (11, 10)
    assert frame_split(21, 4) == (6, 5, 5, 5)
    with pytest.raises(ValueError, match="fewer GPUs"):
        frame_split(3, 4)
