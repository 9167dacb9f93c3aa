"""One neural job across the GPUs of one machine: guidance-pass parallel plus sequence parallel.

Why it is built this way (pass groups, frame-boundary splits, Ulysses vs all-gather, why not diffusers'
``_cp_plan``, what each step exchanges): docs/neural-engine.md, "Several GPUs"."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from diffusers.models.attention_dispatch import dispatch_attention_fn

if TYPE_CHECKING:
    from diffusers.models.transformers.transformer_wan import WanAttention

    from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer

ATTENTION_MODES = ("auto", "ulysses", "allgather")


def frame_split(frames: int, ranks: int) -> tuple[int, ...]:
    """Latent frames per rank, the first ranks taking one more when they do not divide evenly."""
    if frames < ranks:
        raise ValueError(
            f"{frames} latent frames cannot be split over {ranks} ranks (one frame each at least); use fewer GPUs"
        )
    return tuple(frames // ranks + (r < frames % ranks) for r in range(ranks))


@dataclass(frozen=True)
class SequenceShard:
    """This rank's latent frames of one forward, and the collectives over the ranks that share the sequence."""

    group: dist.ProcessGroup
    rank: int  # in ``group``
    frames: tuple[int, ...]  # latent frames of every rank of the group
    tokens_per_frame: int
    attention: str  # "ulysses" | "allgather"

    @property
    def sizes(self) -> list[int]:
        return [f * self.tokens_per_frame for f in self.frames]

    def local(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """This rank's tokens of a full-sequence tensor."""
        start = sum(self.sizes[: self.rank])
        return x.narrow(dim, start, self.sizes[self.rank])

    def local_frames(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        return x.narrow(dim, sum(self.frames[: self.rank]), self.frames[self.rank])

    def gather(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Every rank's tokens, in order (all_gather wants equal sizes: pad to the longest, then trim)."""
        dim %= x.ndim
        longest = max(self.sizes)
        pad = longest - x.shape[dim]
        if pad:
            x = torch.cat([x, x.new_zeros(*x.shape[:dim], pad, *x.shape[dim + 1 :])], dim=dim)
        parts = [torch.empty_like(x) for _ in self.frames]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        return torch.cat([p.narrow(dim, 0, n) for p, n in zip(parts, self.sizes, strict=True)], dim=dim)

    def first_frame(self, x: torch.Tensor) -> torch.Tensor:
        """The first latent frame's tokens of ``x`` [b, S, ...] on every rank (the group's first rank holds them)."""
        ref = x[:, : self.tokens_per_frame].contiguous()
        dist.broadcast(ref, src=dist.get_global_rank(self.group, 0), group=self.group)
        return ref

    def self_attention(
        self, attn: WanAttention, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Wan's self-attention (``WanAttnProcessor`` with no cross inputs) over all tokens, from the local ones."""
        if attn.fused_projections:
            q, k, v = attn.to_qkv(x).chunk(3, dim=-1)
        else:
            q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        q = _rotate(attn.norm_q(q).unflatten(2, (attn.heads, -1)), *rotary)
        k = _rotate(attn.norm_k(k).unflatten(2, (attn.heads, -1)), *rotary)
        v = v.unflatten(2, (attn.heads, -1))
        backend = getattr(attn.processor, "_attention_backend", None)
        if self.attention == "ulysses":
            q, k, v = self._heads_to_sequence(torch.stack([q, k, v], dim=2)).unbind(2)
            out = self._sequence_to_heads(dispatch_attention_fn(q, k, v, backend=backend))
        else:
            k, v = self.gather(torch.stack([k, v], dim=2)).unbind(2)
            out = dispatch_attention_fn(q, k, v, backend=backend)
        out = out.flatten(2, 3).type_as(q)
        return attn.to_out[1](attn.to_out[0](out))

    def _heads_to_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """[b, S_local, c, H, D] -> [b, S, c, H/N, D]: rank j receives every rank's tokens for its heads."""
        n = len(self.frames)
        b, s, c, h, d = x.shape
        send = x.reshape(b, s, c, n, h // n, d).permute(3, 1, 2, 0, 4, 5).contiguous()  # [N, S_local, c, b, H/N, D]
        recv = send.new_empty(sum(self.sizes), c, b, h // n, d)
        dist.all_to_all_single(recv, send.flatten(0, 1), self.sizes, [s] * n, group=self.group)
        return recv.permute(2, 0, 1, 3, 4)

    def _sequence_to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[b, S, H/N, D] -> [b, S_local, H, D]: the attention output back to its tokens' ranks."""
        n = len(self.frames)
        b, _, hn, d = x.shape
        s = self.sizes[self.rank]
        recv = x.new_empty(n * s, b, hn, d)
        dist.all_to_all_single(recv, x.permute(1, 0, 2, 3).contiguous(), [s] * n, self.sizes, group=self.group)
        return recv.view(n, s, b, hn, d).permute(2, 1, 0, 3, 4).flatten(2, 3)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary embedding exactly as ``WanAttnProcessor`` applies it (in the input dtype's promotion)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    c, s = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * c - x2 * s
    out[..., 1::2] = x1 * s + x2 * c
    return out.type_as(x)


@dataclass(frozen=True)
class _Layout:
    """How one forward's passes and sequence are shared: this rank's passes and its two groups."""

    passes: slice
    pass_group: dist.ProcessGroup | None  # the ranks with the same part of the sequence of the other passes
    seq_group: dist.ProcessGroup | None  # the ranks that share this rank's passes, split by sequence
    seq_rank: int
    seq_size: int


class ParallelForward:
    """Stands in for ``InfiniteTalkTransformer.forward`` on every rank of ``group`` (see the module docstring)."""

    def __init__(self, group: dist.ProcessGroup, attention: str = "auto") -> None:
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention={attention!r}: choose one of {', '.join(ATTENTION_MODES)}")
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        self.attention = attention
        self._groups: dict[int, tuple[dist.ProcessGroup | None, dist.ProcessGroup | None]] = {}

    def layout(self, passes: int) -> _Layout:
        count = math.gcd(passes, self.world)  # pass groups: as many as divide both, so no rank idles
        size = self.world // count
        index, seq_rank = divmod(self.rank, size)
        if count not in self._groups:  # every rank gets here in the same order (SPMD), as new_group needs
            ranks = [dist.get_global_rank(self.group, r) for r in range(self.world)]
            if count == 1:
                self._groups[count] = (None, self.group)
            elif size == 1:
                self._groups[count] = (self.group, None)
            else:
                seq = dist.new_group(ranks[index * size : (index + 1) * size], use_local_synchronization=True)
                across = dist.new_group(ranks[seq_rank::size], use_local_synchronization=True)
                self._groups[count] = (across, seq)
        per = passes // count
        return _Layout(slice(index * per, (index + 1) * per), *self._groups[count], seq_rank, size)

    def __call__(
        self,
        model: InfiniteTalkTransformer,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor,
        audio: torch.Tensor | Sequence[torch.Tensor] | None = None,
        ref_masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        n, _, frames, height, width = hidden_states.shape
        lay = self.layout(n)

        def mine(t: torch.Tensor) -> torch.Tensor:
            return t[lay.passes] if t.shape[0] == n else t  # a shared [1] input stays shared

        shard = None
        if lay.seq_group is not None:
            p_t, p_h, p_w = model.config.patch_size
            heads = model.config.num_attention_heads
            attention = self.attention
            if attention == "auto":
                attention = "ulysses" if heads % lay.seq_size == 0 else "allgather"
            elif attention == "ulysses" and heads % lay.seq_size:
                raise ValueError(f"Ulysses attention needs the {heads} heads to divide over {lay.seq_size} ranks")
            shard = SequenceShard(
                lay.seq_group, lay.seq_rank, frame_split(frames // p_t, lay.seq_size),
                (height // p_h) * (width // p_w), attention,
            )
        out = model.forward_local(
            mine(hidden_states), mine(timestep), mine(encoder_hidden_states), mine(encoder_hidden_states_image),
            None if audio is None else (mine(audio) if isinstance(audio, torch.Tensor) else list(audio)[lay.passes]),
            ref_masks, shard,
        )
        if lay.pass_group is None:
            return out
        parts = [torch.empty_like(out) for _ in range(dist.get_world_size(lay.pass_group))]
        dist.all_gather(parts, out.contiguous(), group=lay.pass_group)
        return torch.cat(parts)


def enable_parallel(
    transformer: InfiniteTalkTransformer, group: dist.ProcessGroup | None = None, *, attention: str = "auto"
) -> None:
    """Share every forward of ``transformer`` over the ranks of ``group`` (default: the whole world).

    Call it on every rank after ``init_process_group`` (``torchrun`` sets its environment) with the same
    model and weights; then run the same pipeline on every rank. ``attention``: "ulysses", "allgather"
    or "auto" (Ulysses when the heads divide over the ranks that share a sequence).
    """
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("enable_parallel needs torch.distributed initialised (run under torchrun)")
    transformer.parallel_forward = ParallelForward(group or dist.group.WORLD, attention)


def disable_parallel(transformer: InfiniteTalkTransformer) -> None:
    """Back to single-process forwards (the process groups stay; destroy them with the process group)."""
    transformer.parallel_forward = None
