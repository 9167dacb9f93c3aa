"""Tiny weights written in the official file layouts, for loading through the real loaders.

Nothing here imitates our own code: tensors are random, key names are the originals'
(Wan shards, InfiniteTalk adapter, Wan's T5/CLIP/VAE .pth, a wav2vec2 folder).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from infinitetalk.engines.neural.configs import TINY, ModelConfig, to_wan_config
from infinitetalk.engines.neural.manifest import adapter_keys, base_keys
from infinitetalk.engines.neural.weights import WeightsLayout

T5_VOCAB = 64
T5_HEADS = 2
CLIP_HIDDEN = 80


def _rand(shape: tuple[int, ...], g: torch.Generator, std: float = 0.05) -> torch.Tensor:
    t = torch.randn(shape, generator=g) * std
    if len(shape) == 1:  # norms and biases: weights near 1 keep activations sane
        t = t + 1.0
    return t.contiguous()


def write_base(layout: WeightsLayout, cfg: ModelConfig, g: torch.Generator, shards: int = 2) -> dict[str, torch.Tensor]:
    layout.base_dir.mkdir(parents=True, exist_ok=True)
    (layout.base_config).write_text(json.dumps(to_wan_config(cfg)))
    tensors = {k: _rand(s, g) for k, s in base_keys(cfg)}
    keys = list(tensors)
    for i in range(shards):
        part = {k: tensors[k] for k in keys[i::shards]}
        save_file(part, str(layout.base_dir / f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"))
    return tensors


def write_adapter(
    layout: WeightsLayout, cfg: ModelConfig, g: torch.Generator, variant: str = "single"
) -> dict[str, torch.Tensor]:
    path = layout.adapter(variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: _rand(s, g) for k, s in adapter_keys(cfg)}
    save_file(tensors, str(path))
    return tensors


def write_t5(layout: WeightsLayout, cfg: ModelConfig, g: torch.Generator, layers: int = 2) -> None:
    d, f = cfg.text_dim, 2 * cfg.text_dim
    sd = {"token_embedding.weight": _rand((T5_VOCAB, d), g, 1.0), "norm.weight": _rand((d,), g)}
    for i in range(layers):
        p = f"blocks.{i}."
        for n in "qkvo":
            sd[f"{p}attn.{n}.weight"] = _rand((d, d), g, 0.2)
        sd[p + "pos_embedding.embedding.weight"] = _rand((32, T5_HEADS), g, 0.2)
        sd[p + "norm1.weight"] = _rand((d,), g)
        sd[p + "norm2.weight"] = _rand((d,), g)
        sd[p + "ffn.gate.0.weight"] = _rand((f, d), g, 0.2)
        sd[p + "ffn.fc1.weight"] = _rand((f, d), g, 0.2)
        sd[p + "ffn.fc2.weight"] = _rand((d, f), g, 0.2)
    torch.save(sd, str(layout.t5))
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in "a person talks to the camera with natural expressions and head movement clear face steady shot".split():
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # like umt5's tokenizer: every text ends with </s>
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(str(layout.tokenizer))


def write_clip(layout: WeightsLayout, g: torch.Generator, layers: int = 2, patch: int = 14, grid: int = 2) -> None:
    h = CLIP_HIDDEN
    sd = {
        "visual.patch_embedding.weight": _rand((h, 3, patch, patch), g),
        "visual.cls_embedding": _rand((1, 1, h), g),
        "visual.pos_embedding": _rand((1, grid * grid + 1, h), g),
        "visual.pre_norm.weight": _rand((h,), g),
        "visual.pre_norm.bias": _rand((h,), g),
        "visual.post_norm.weight": _rand((h,), g),
        "visual.post_norm.bias": _rand((h,), g),
        "visual.head": _rand((h, 16), g),
        "textual.token_embedding.weight": _rand((10, 8), g),  # the text tower is ignored
        "log_scale": torch.tensor(4.6),
    }
    for i in range(layers):
        p = f"visual.transformer.{i}."
        for n in ("norm1", "norm2"):
            sd[p + n + ".weight"], sd[p + n + ".bias"] = _rand((h,), g), _rand((h,), g)
        sd[p + "attn.to_qkv.weight"], sd[p + "attn.to_qkv.bias"] = _rand((3 * h, h), g), _rand((3 * h,), g)
        sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"] = _rand((h, h), g), _rand((h,), g)
        sd[p + "mlp.0.weight"], sd[p + "mlp.0.bias"] = _rand((2 * h, h), g), _rand((2 * h,), g)
        sd[p + "mlp.2.weight"], sd[p + "mlp.2.bias"] = _rand((h, 2 * h), g), _rand((h,), g)
    torch.save(sd, str(layout.clip))


_RES = {
    "norm1.gamma": "residual.0.gamma",
    "conv1": "residual.2",
    "norm2.gamma": "residual.3.gamma",
    "conv2": "residual.6",
    "conv_shortcut": "shortcut",
}


def vae_original_key(key: str) -> str:
    """diffusers AutoencoderKLWan key -> Wan2.1_VAE.pth key (the inverse of diffusers' converter)."""
    fixed = {
        "quant_conv": "conv1",
        "post_quant_conv": "conv2",
        "encoder.conv_in": "encoder.conv1",
        "decoder.conv_in": "decoder.conv1",
        "encoder.norm_out": "encoder.head.0",
        "encoder.conv_out": "encoder.head.2",
        "decoder.norm_out": "decoder.head.0",
        "decoder.conv_out": "decoder.head.2",
    }
    for a, b in fixed.items():
        if key.startswith(a + "."):
            return b + key[len(a) :]
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d)\.(.+)", key):
        idx = {"resnets": {"0": 0, "1": 2}, "attentions": {"0": 1}}[m[2]][m[3]]
        rest = m[4]
        if m[2] == "resnets":
            rest = next(rest.replace(a, b, 1) for a, b in _RES.items() if rest.startswith(a))
        return f"{m[1]}.middle.{idx}.{rest}"
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.(.+)", key):
        rest = m[2]
        for a, b in _RES.items():
            if rest.startswith(a):
                rest = rest.replace(a, b, 1)
                break
        return f"encoder.downsamples.{m[1]}.{rest}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        rest = next(m[3].replace(a, b, 1) for a, b in _RES.items() if m[3].startswith(a))
        return f"decoder.upsamples.{4 * int(m[1]) + int(m[2])}.{rest}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", key):
        return f"decoder.upsamples.{4 * int(m[1]) + 3}.{m[2]}"
    raise AssertionError(f"unmapped VAE key {key}")


def write_vae(layout: WeightsLayout, g: torch.Generator, base_dim: int = 8) -> AutoencoderKLWan:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    vae = AutoencoderKLWan(base_dim=base_dim)
    torch.save({vae_original_key(k): v.clone() for k, v in vae.state_dict().items()}, str(layout.vae))
    return vae


def write_wav2vec(layout: WeightsLayout, cfg: ModelConfig) -> None:
    config = Wav2Vec2Config(
        hidden_size=cfg.audio_dim,
        num_hidden_layers=cfg.audio_layers,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        do_stable_layer_norm=False,
    )
    Wav2Vec2Model(config).save_pretrained(str(layout.wav2vec))
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    ).save_pretrained(str(layout.wav2vec))


def write_weights(
    root: Path, cfg: ModelConfig = TINY, seed: int = 0, variants: tuple[str, ...] = ("single", "multi")
) -> WeightsLayout:
    """A complete tiny weights folder in the official layout."""
    g = torch.Generator().manual_seed(seed)
    layout = WeightsLayout(root)
    write_base(layout, cfg, g)
    for v in variants:
        write_adapter(layout, cfg, g, v)
    write_t5(layout, cfg, g)
    write_clip(layout, g)
    write_vae(layout, g)
    write_wav2vec(layout, cfg)
    return layout
