"""The InfiniteTalk transformer: diffusers' Wan 2.1 I2V transformer plus the audio adapter.

``InfiniteTalkTransformer`` subclasses ``WanTransformer3DModel`` so the base weights, the
attention processors, ``set_attention_backend``, group offload and ``compile_repeated_blocks``
all come from diffusers; each block becomes an ``InfiniteTalkBlock`` that adds
``x = x + audio_cross_attn(norm_x(x), audio_tokens)`` between the cross-attention and the
feed-forward. The block class is registered with diffusers' hook registry (same metadata as
Wan's block: it returns hidden states only), so block caches work on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel, WanTransformerBlock
from torch import nn

from infinitetalk.engines.neural.adapter import (
    AudioCrossAttention,
    AudioProjModel,
    reference_attention,
    route_positions,
    select_audio_windows,
)
from infinitetalk.engines.neural.configs import FULL, ModelConfig

if TYPE_CHECKING:
    from infinitetalk.engines.neural.parallel import ParallelForward, SequenceShard

#: Tokens of text context the Wan I2V attention processor expects after the image tokens.
TEXT_LEN = 512


def _apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's 3D rotary embedding on [B, S, H, D] (interleaved pairs, as diffusers applies it)."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    c, s = cos[..., 0::2], sin[..., 1::2]
    return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2).type_as(x)


class InfiniteTalkBlock(WanTransformerBlock):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg.dim, cfg.ffn_dim, cfg.num_heads, "rms_norm_across_heads", True, cfg.eps, cfg.dim)
        self.norm_x = nn.LayerNorm(cfg.dim, eps=cfg.eps, elementwise_affine=True)
        self.audio_cross_attn = AudioCrossAttention(cfg)

    def _routing(
        self, x: torch.Tensor, rotary_emb: tuple, masks: torch.Tensor, shard: SequenceShard | None = None
    ) -> torch.Tensor:
        # Two speakers: recompute this block's self-attention q (all tokens) and k (first
        # latent frame) to see which person's region each token looks at. Costs one extra q/k
        # projection per block and routed pass, only for two-person jobs. ``x`` [b, S, dim]
        # -> positions [b, S], each pass from its own q/k.
        attn = self.attn1
        if attn.fused_projections:
            q, k, _ = attn.to_qkv(x).chunk(3, dim=-1)
        else:
            q, k = attn.to_q(x), attn.to_k(x)
        q = attn.norm_q(q).unflatten(2, (attn.heads, -1))
        k = attn.norm_k(k).unflatten(2, (attn.heads, -1))
        q, k = _apply_rotary(q, *rotary_emb), _apply_rotary(k, *rotary_emb)
        if shard is None:
            return route_positions(reference_attention(q, k, masks, masks.shape[-1]))
        # Sequence parallel: the first frame lives on the group's first rank, and each map's min-max
        # scaling spans every token, so the maps (3 floats a token) are gathered before scaling.
        maps = reference_attention(q, shard.first_frame(k), masks, masks.shape[-1])
        return shard.local(route_positions(shard.gather(maps, dim=-1)), dim=-1)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        audio_tokens: torch.Tensor | None = None,
        ref_masks: torch.Tensor | None = None,
        routed: tuple[bool, ...] | None = None,
        shard: SequenceShard | None = None,
    ) -> torch.Tensor:
        # ``shard``: this rank's latent frames when one job runs on several (parallel.py); None: all of them.
        shift, scale, gate, c_shift, c_scale, c_gate = (self.scale_shift_table + temb.float()).chunk(6, dim=1)

        # 1. Self-attention (modulated by the timestep)
        normed = (self.norm1(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        positions = None
        if ref_masks is not None and routed and any(routed):
            if all(routed):
                positions = self._routing(normed, rotary_emb, ref_masks, shard)
            else:  # only the passes with both people's audio route; the rest stay at position 0
                idx = [i for i, r in enumerate(routed) if r]
                positions = normed.new_zeros(normed.shape[:2], dtype=torch.float32)
                positions[idx] = self._routing(normed[idx], rotary_emb, ref_masks, shard)
        if shard is None:
            out = self.attn1(normed, None, None, rotary_emb)
        else:
            out = shard.self_attention(self.attn1, normed, rotary_emb)
        hidden_states = (hidden_states.float() + out * gate).type_as(hidden_states)

        # 2. Text + image cross-attention
        normed = self.norm2(hidden_states.float()).type_as(hidden_states)
        hidden_states = hidden_states + self.attn2(normed, encoder_hidden_states, None, None)

        # 3. Audio cross-attention, per latent frame (InfiniteTalk): no gate, no modulation
        if audio_tokens is not None:
            normed = self.norm_x(hidden_states.float()).type_as(hidden_states)
            hidden_states = hidden_states + self.audio_cross_attn(
                normed, audio_tokens, audio_tokens.shape[1], positions, routed
            )

        # 4. Feed-forward (modulated)
        normed = (self.norm3(hidden_states.float()) * (1 + c_scale) + c_shift).type_as(hidden_states)
        ff = self.ffn(normed)
        return (hidden_states.float() + ff.float() * c_gate).type_as(hidden_states)


TransformerBlockRegistry.register(
    InfiniteTalkBlock,
    TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=None),
)


class InfiniteTalkTransformer(WanTransformer3DModel):
    """Wan 2.1 I2V + InfiniteTalk. Build with ``InfiniteTalkTransformer.from_model_config(cfg)``."""

    _no_split_modules = ["InfiniteTalkBlock"]
    _repeated_blocks = ["InfiniteTalkBlock"]
    # norm_x runs in fp32 like Wan's own block norms (its input is cast to float first).
    _keep_in_fp32_modules = [*WanTransformer3DModel._keep_in_fp32_modules, "norm_x"]
    #: Set by ``parallel.enable_parallel``: shares each forward with the other ranks of a job.
    parallel_forward: ParallelForward | None = None

    @classmethod
    def from_model_config(cls, cfg: ModelConfig = FULL) -> InfiniteTalkTransformer:
        model = cls(**cfg.diffusers_kwargs())
        model.attach_adapter(cfg)
        return model

    def attach_adapter(self, cfg: ModelConfig) -> None:
        """Swap every Wan block for an InfiniteTalk block and add ``audio_proj``.

        Done after diffusers' constructor so the registered config stays Wan's own.
        """
        self.model_cfg = cfg
        self.blocks = nn.ModuleList(InfiniteTalkBlock(cfg) for _ in range(cfg.num_layers))
        self.audio_proj = AudioProjModel(cfg)

    def encode_audio(self, audio: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Wav2vec2 windows per batch element -> audio tokens [B, latent frames, people*tokens, C].

        ``audio``: [B, people, F, 5, L, C], or one [people_b, F, 5, L, C] per batch element when
        the elements differ: the official null-audio pass is ONE person's zeros even with two
        speakers (``torch.zeros_like(audio_embs)[-1:]`` in ``wan/multitalk.py``). Such an
        element's tokens are repeated to the batch's width so the passes share one forward:
        attending to two identical copies of the same keys and values gives exactly the same
        output as attending to one. Returns the tokens and the people count per element.
        """
        items = list(audio.unbind(0)) if isinstance(audio, torch.Tensor) else list(audio)
        people = tuple(a.shape[0] for a in items)
        most = max(people)
        if any(most % p for p in people):
            raise ValueError(f"audio people per pass {people}: each must divide the largest")
        first, later = select_audio_windows(torch.cat(items), self.model_cfg.vae_stride_t)
        dtype = self.audio_proj.proj1.weight.dtype
        tokens = self.audio_proj(first.to(dtype), later.to(dtype))  # [sum(people), T, n, C]
        out = []
        for p, t in zip(people, tokens.split(list(people)), strict=True):
            t = t.permute(1, 0, 2, 3).flatten(1, 2)  # [T, p*n, C]: person 1's tokens first
            out.append(t.repeat(1, most // p, 1))
        return torch.stack(out), people

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor,
        audio: torch.Tensor | Sequence[torch.Tensor] | None = None,
        ref_masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the flow velocity.

        ``hidden_states`` [B, 36, T, H, W] (noise + mask + condition latents), ``timestep`` [B],
        ``encoder_hidden_states`` [B, 512, text_dim], ``encoder_hidden_states_image``
        [B, 257, image_dim], ``audio`` [B, people, 4T-3, 5, L, C] wav2vec2 windows (or one
        [people_b, 4T-3, 5, L, C] per element, see ``encode_audio``), ``ref_masks`` [3, first-frame
        tokens] (two speakers only). Like the official model, an element routes its two people
        only when it has two people's audio (``human_num == 2``). Returns [B, 16, T, H, W].
        """
        if self.parallel_forward is not None:
            return self.parallel_forward(
                self, hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image, audio, ref_masks
            )
        return self.forward_local(
            hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image, audio, ref_masks
        )

    def forward_local(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor,
        audio: torch.Tensor | Sequence[torch.Tensor] | None = None,
        ref_masks: torch.Tensor | None = None,
        shard: SequenceShard | None = None,
    ) -> torch.Tensor:
        """``forward`` on this process; with ``shard``, the blocks see only its latent frames."""
        b, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config.patch_size
        rotary = self.rope(hidden_states)
        x = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()

        temb, tproj, text, image = self.condition_embedder(timestep, encoder_hidden_states, encoder_hidden_states_image)
        tproj = tproj.unflatten(1, (6, -1))
        context = torch.cat([image, text], dim=1)
        audio_tokens, routed = None, None
        if audio is not None:
            audio_tokens, people = self.encode_audio(audio)
            routed = tuple(p == 2 for p in people) if ref_masks is not None else None
        if shard is not None:
            x, rotary = shard.local(x), (shard.local(rotary[0]), shard.local(rotary[1]))
            audio_tokens = None if audio_tokens is None else shard.local_frames(audio_tokens)

        for block in self.blocks:
            x = block(x, context, tproj, rotary, audio_tokens, ref_masks, routed, shard)

        shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        x = (self.norm_out(x.float()) * (1 + scale) + shift).type_as(x)
        x = self.proj_out(x)
        if shard is not None:
            x = shard.gather(x)
        x = x.reshape(b, frames // p_t, height // p_h, width // p_w, p_t, p_h, p_w, -1)
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)
