"""The InfiniteTalk transformer: diffusers' Wan 2.1 I2V transformer plus the audio adapter.

``InfiniteTalkTransformer`` subclasses ``WanTransformer3DModel`` so the base weights, the
attention processors, ``set_attention_backend``, group offload and ``compile_repeated_blocks``
all come from diffusers; each block becomes an ``InfiniteTalkBlock`` that adds
``x = x + audio_cross_attn(norm_x(x), audio_tokens)`` between the cross-attention and the
feed-forward. The block class is registered with diffusers' hook registry (same metadata as
Wan's block: it returns hidden states only), so block caches work on it.
"""

from __future__ import annotations

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

    def _routing(self, x: torch.Tensor, rotary_emb: tuple, masks: torch.Tensor) -> torch.Tensor:
        # Two speakers: recompute this block's self-attention q (all tokens) and k (first
        # latent frame) to see which person's region each token looks at. Costs one extra q/k
        # projection per block, only for two-person jobs.
        attn = self.attn1
        if attn.fused_projections:
            q, k, _ = attn.to_qkv(x).chunk(3, dim=-1)
        else:
            q, k = attn.to_q(x), attn.to_k(x)
        q = attn.norm_q(q).unflatten(2, (attn.heads, -1))
        k = attn.norm_k(k).unflatten(2, (attn.heads, -1))
        q, k = _apply_rotary(q, *rotary_emb), _apply_rotary(k, *rotary_emb)
        return route_positions(reference_attention(q, k, masks, masks.shape[-1]))

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
        audio_tokens: torch.Tensor | None = None,
        ref_masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        shift, scale, gate, c_shift, c_scale, c_gate = (self.scale_shift_table + temb.float()).chunk(6, dim=1)

        # 1. Self-attention (modulated by the timestep)
        normed = (self.norm1(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        positions = self._routing(normed, rotary_emb, ref_masks) if ref_masks is not None else None
        out = self.attn1(normed, None, None, rotary_emb)
        hidden_states = (hidden_states.float() + out * gate).type_as(hidden_states)

        # 2. Text + image cross-attention
        normed = self.norm2(hidden_states.float()).type_as(hidden_states)
        hidden_states = hidden_states + self.attn2(normed, encoder_hidden_states, None, None)

        # 3. Audio cross-attention, per latent frame (InfiniteTalk): no gate, no modulation
        if audio_tokens is not None:
            normed = self.norm_x(hidden_states.float()).type_as(hidden_states)
            hidden_states = hidden_states + self.audio_cross_attn(
                normed, audio_tokens, audio_tokens.shape[1], positions
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

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, people, F, 5, L, C] windows -> [B, latent frames, people*tokens, C] audio tokens."""
        b, people = audio.shape[:2]
        first, later = select_audio_windows(audio.flatten(0, 1), self.model_cfg.vae_stride_t)
        dtype = self.audio_proj.proj1.weight.dtype
        tokens = self.audio_proj(first.to(dtype), later.to(dtype))  # [B*people, T, n, C]
        tokens = tokens.unflatten(0, (b, people))
        return tokens.permute(0, 2, 1, 3, 4).flatten(2, 3)

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor,
        audio: torch.Tensor | None = None,
        ref_masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the flow velocity.

        ``hidden_states`` [B, 36, T, H, W] (noise + mask + condition latents), ``timestep`` [B],
        ``encoder_hidden_states`` [B, 512, text_dim], ``encoder_hidden_states_image``
        [B, 257, image_dim], ``audio`` [B, people, 4T-3, 5, L, C] wav2vec2 windows,
        ``ref_masks`` [3, first-frame tokens] (two speakers only). Returns [B, 16, T, H, W].
        """
        b, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config.patch_size
        rotary = self.rope(hidden_states)
        x = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()

        temb, tproj, text, image = self.condition_embedder(timestep, encoder_hidden_states, encoder_hidden_states_image)
        tproj = tproj.unflatten(1, (6, -1))
        context = torch.cat([image, text], dim=1)
        audio_tokens = self.encode_audio(audio) if audio is not None else None

        for block in self.blocks:
            x = block(x, context, tproj, rotary, audio_tokens, ref_masks)

        shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        x = (self.norm_out(x.float()) * (1 + scale) + shift).type_as(x)
        x = self.proj_out(x)
        x = x.reshape(b, frames // p_t, height // p_h, width // p_w, p_t, p_h, p_w, -1)
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)
