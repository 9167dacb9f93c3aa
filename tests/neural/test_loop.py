from __future__ import annotations

import numpy as np
import pytest
import torch
from official_oracles import official_color, official_windows

from infinitetalk.engines.neural.audio import audio_windows
from infinitetalk.engines.neural.loop import Chunk, color_correct, pad_audio_tail, plan_chunks


def test_one_chunk() -> None:
    assert plan_chunks(50) == [Chunk(0, 0, 0, 50)]
    assert plan_chunks(81) == [Chunk(0, 0, 0, 81)]


def test_chunk_bookkeeping_by_hand() -> None:
    # 200 frames: chunk 0 gives 0..80 (81), chunk 1 starts at 72 and gives 81..152 (72),
    # chunk 2 starts at 144 and gives the remaining 47 (153..199)
    chunks = plan_chunks(200)
    assert chunks == [Chunk(0, 0, 0, 81), Chunk(1, 72, 9, 72), Chunk(2, 144, 9, 47)]
    assert sum(c.keep for c in chunks) == 200
    for c in chunks[1:]:
        assert c.start + c.keep_from == sum(p.keep for p in chunks[: c.index])  # output continues exactly


def test_exact_fit_has_no_empty_chunk() -> None:
    chunks = plan_chunks(81 + 72)
    assert [c.keep for c in chunks] == [81, 72]


@pytest.mark.parametrize("rows", [82, 100, 152, 153, 154, 226, 500])
def test_audio_windows_past_the_end_are_the_official_ones(rows: int) -> None:
    chunks = plan_chunks(rows)
    padded = pad_audio_tail(torch.arange(rows, dtype=torch.float32)[:, None], chunks[-1].start + 81)
    ours = [audio_windows(padded, c.start, 81)[:, :, 0].long().tolist() for c in chunks]
    assert ours == official_windows(rows)


def test_audio_tail_by_hand() -> None:
    # 100 frames: the last chunk is 72..152; rows 100.. are 99, 98, ... (the last row repeated first)
    padded = pad_audio_tail(torch.arange(100.0)[:, None], 153)[:, 0]
    assert padded.shape == (156,)
    assert padded[98:104].tolist() == [98, 99, 99, 98, 97, 96]
    assert audio_windows(padded[:, None], 72, 81)[-1, :, 0].tolist() == [49, 48, 47, 46, 45]  # frame 152
    # audio that ends beyond the chunk is left alone
    assert torch.equal(pad_audio_tail(torch.arange(10.0), 8), torch.arange(10.0))
    # shorter than the official code accepts (it needs more than 81 frames): the reflection goes on
    short = pad_audio_tail(torch.arange(20.0), 81)
    assert short.shape == (84,) and short[18:23].tolist() == [18, 19, 19, 18, 17]
    assert short[38:42].tolist() == [1, 0, 0, 1] and short[-4:].tolist() == [0, 1, 2, 3]


def _to_video(frames01: np.ndarray) -> torch.Tensor:
    """[T, H, W, 3] in [0, 1] -> [1, 3, T, H, W] in [-1, 1]."""
    return torch.from_numpy(frames01 * 2 - 1).permute(3, 0, 1, 2)[None].float()


def test_color_correction_is_the_official_algorithm() -> None:
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.2, 0.8, (6, 5, 3))
    drifted = np.clip(ref * [1.2, 0.9, 1.0] + [0.05, 0.0, -0.1], 0, 1)
    saturated = rng.uniform(0.0, 1.0, (6, 5, 3)) ** 3  # clips at 0 and 1 on the way back
    frames = np.stack([drifted, saturated])
    reference = _to_video(ref[None])[:, :, 0]
    for strength in (1.0, 0.5):
        got = color_correct(_to_video(frames), reference, strength)
        expected = _to_video(official_color(frames.astype(np.float32), ref.astype(np.float32), strength))
        assert torch.allclose(got, expected, atol=2e-5)
    assert torch.equal(color_correct(_to_video(frames), reference, 0.0), _to_video(frames))


def test_color_correction_by_hand() -> None:
    # A flat grey reference has std 0: every frame maps onto that grey (Lab round trip), and
    # strength 0.5 lands halfway between the frame and the grey, in RGB.
    rng = np.random.default_rng(1)
    frames = _to_video(rng.uniform(0.0, 1.0, (2, 4, 4, 3)))
    grey = torch.zeros(1, 3, 4, 4)  # 0.5 in [0, 1]
    assert torch.allclose(color_correct(frames, grey, 1.0), torch.zeros_like(frames), atol=1e-6)
    assert torch.allclose(color_correct(frames, grey, 0.5), frames / 2, atol=1e-6)
    # a flat frame (std 0 in every Lab channel) takes the reference's mean colour: here its grey
    flat = torch.full((1, 3, 1, 4, 4), 0.4)
    assert torch.allclose(color_correct(flat, grey, 1.0), torch.zeros_like(flat), atol=1e-6)
