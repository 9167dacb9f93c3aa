from __future__ import annotations

import numpy as np
import torch

from infinitetalk.engines.neural.loop import Chunk, color_match, pad_mirror, plan_chunks


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


def test_tail_padding_mirrors() -> None:
    emb = torch.arange(5.0)[:, None]
    assert pad_mirror(emb, 9)[:, 0].tolist() == [0, 1, 2, 3, 4, 3, 2, 1, 0]
    assert pad_mirror(emb, 12)[:, 0].tolist() == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3]
    assert pad_mirror(emb, 3)[:, 0].tolist() == [0, 1, 2]


def test_color_match_moves_towards_reference() -> None:
    rng = np.random.default_rng(0)
    ref = rng.integers(100, 200, (8, 8, 3), dtype=np.uint8)
    frames = np.clip(ref.astype(int) + 40, 0, 255).astype(np.uint8)[None]  # drifted brighter
    assert np.array_equal(color_match(frames, ref, 0.0), frames)
    out = color_match(frames, ref, 1.0)
    assert abs(out.mean() - ref.mean()) < abs(frames.mean() - ref.mean()) / 4
