"""Every tensor of the official files, in their original key layout, computed from a ModelConfig.

For the full config this reproduces the published state-dict listing (1,633 tensors: 1,303
in the Wan base shards, 330 in ``infinitetalk.safetensors``); ``infinitetalk models verify``
checks downloaded files against it without reading tensor data.
"""

from __future__ import annotations

from collections.abc import Iterator

from infinitetalk.engines.neural.configs import ModelConfig

Shape = tuple[int, ...]


def base_keys(cfg: ModelConfig) -> Iterator[tuple[str, Shape]]:
    """The Wan 2.1 I2V transformer, as in ``diffusion_pytorch_model-*.safetensors``."""
    d, f = cfg.dim, cfg.ffn_dim
    yield "patch_embedding.weight", (d, cfg.in_dim, 1, 2, 2)
    yield "patch_embedding.bias", (d,)
    yield "text_embedding.0.weight", (d, cfg.text_dim)
    yield "text_embedding.0.bias", (d,)
    yield "text_embedding.2.weight", (d, d)
    yield "text_embedding.2.bias", (d,)
    yield "time_embedding.0.weight", (d, cfg.freq_dim)
    yield "time_embedding.0.bias", (d,)
    yield "time_embedding.2.weight", (d, d)
    yield "time_embedding.2.bias", (d,)
    yield "time_projection.1.weight", (6 * d, d)
    yield "time_projection.1.bias", (6 * d,)
    for i in range(cfg.num_layers):
        p = f"blocks.{i}."
        yield p + "modulation", (1, 6, d)
        for attn, names in (("self_attn", "qkvo"), ("cross_attn", "qkvo")):
            for n in names:
                yield f"{p}{attn}.{n}.weight", (d, d)
                yield f"{p}{attn}.{n}.bias", (d,)
            yield f"{p}{attn}.norm_q.weight", (d,)
            yield f"{p}{attn}.norm_k.weight", (d,)
            if attn == "self_attn":
                yield p + "norm3.weight", (d,)
                yield p + "norm3.bias", (d,)
        for n in ("k_img", "v_img"):
            yield f"{p}cross_attn.{n}.weight", (d, d)
            yield f"{p}cross_attn.{n}.bias", (d,)
        yield p + "cross_attn.norm_k_img.weight", (d,)
        yield p + "ffn.0.weight", (f, d)
        yield p + "ffn.0.bias", (f,)
        yield p + "ffn.2.weight", (d, f)
        yield p + "ffn.2.bias", (d,)
    yield "head.modulation", (1, 2, d)
    yield "head.head.weight", (cfg.out_dim * 4, d)
    yield "head.head.bias", (cfg.out_dim * 4,)
    e = cfg.image_dim
    yield "img_emb.proj.0.weight", (e,)
    yield "img_emb.proj.0.bias", (e,)
    yield "img_emb.proj.1.weight", (e, e)
    yield "img_emb.proj.1.bias", (e,)
    yield "img_emb.proj.3.weight", (d, e)
    yield "img_emb.proj.3.bias", (d,)
    yield "img_emb.proj.4.weight", (d,)
    yield "img_emb.proj.4.bias", (d,)


def adapter_keys(cfg: ModelConfig) -> Iterator[tuple[str, Shape]]:
    """The InfiniteTalk adapter, as in ``InfiniteTalk/{single,multi}/infinitetalk.safetensors``."""
    d, a = cfg.dim, cfg.audio_dim
    for i in range(cfg.num_layers):
        p = f"blocks.{i}."
        yield p + "audio_cross_attn.q_linear.weight", (d, d)
        yield p + "audio_cross_attn.q_linear.bias", (d,)
        yield p + "audio_cross_attn.proj.weight", (d, d)
        yield p + "audio_cross_attn.proj.bias", (d,)
        yield p + "audio_cross_attn.kv_linear.weight", (2 * d, a)
        yield p + "audio_cross_attn.kv_linear.bias", (2 * d,)
        yield p + "norm_x.weight", (d,)
        yield p + "norm_x.bias", (d,)
    per = cfg.audio_layers * a
    h = cfg.audio_hidden
    yield "audio_proj.proj1.weight", (h, cfg.audio_window * per)
    yield "audio_proj.proj1.bias", (h,)
    yield "audio_proj.proj1_vf.weight", (h, cfg.vf_window * per)
    yield "audio_proj.proj1_vf.bias", (h,)
    yield "audio_proj.proj2.weight", (h, h)
    yield "audio_proj.proj2.bias", (h,)
    yield "audio_proj.proj3.weight", (cfg.audio_tokens * a, h)
    yield "audio_proj.proj3.bias", (cfg.audio_tokens * a,)
    yield "audio_proj.norm.weight", (a,)
    yield "audio_proj.norm.bias", (a,)


def manifest(cfg: ModelConfig) -> dict[str, tuple[Shape, str]]:
    """key -> (shape, part) for base + adapter; part is ``wan-i2v-14b`` or ``infinitetalk``."""
    out = {k: (s, "wan-i2v-14b") for k, s in base_keys(cfg)}
    out.update({k: (s, "infinitetalk") for k, s in adapter_keys(cfg)})
    return out
