"""Model sizes: the official InfiniteTalk/Wan 2.1 I2V 14B numbers, and a tiny one for tests.

One frozen dataclass holds every size the engine needs, so the transformer, the audio
adapter, the manifest and the tests all read the same numbers. The official Wan
``config.json`` is mapped onto it by ``from_wan_config`` (the "local config" the
single-file converter needs, since nothing may be fetched from a model hub).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    # --- Wan 2.1 I2V diffusion transformer ---
    dim: int = 5120
    ffn_dim: int = 13824
    num_heads: int = 40
    num_layers: int = 40
    in_dim: int = 36  # 16 noise + 4 mask + 16 VAE condition channels
    out_dim: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    image_dim: int = 1280  # CLIP ViT-H width; 257 tokens go through img_emb
    eps: float = 1e-6
    # --- InfiniteTalk audio adapter ---
    audio_dim: int = 768  # wav2vec2 hidden size (kv_linear input)
    audio_layers: int = 12  # wav2vec2 transformer layers stacked per frame
    audio_hidden: int = 512  # audio_proj intermediate width
    audio_tokens: int = 32  # tokens per latent frame per person
    # --- fixed by the model's training, kept here so tests may shrink nothing else ---
    audio_window: int = 5  # offsets -2..+2 around each video frame
    vae_stride_t: int = 4  # video frames per latent frame (after the first)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def vf_window(self) -> int:
        """Audio vectors per later latent frame: 3 + 1 + 1 + 3 for a window of 5 and stride 4."""
        half = self.audio_window // 2
        return 2 * (half + 1) + (self.vae_stride_t - 2)

    def diffusers_kwargs(self) -> dict[str, Any]:
        """Arguments for ``WanTransformer3DModel`` (the I2V variant: image embedder and added k/v)."""
        return {
            "patch_size": (1, 2, 2),
            "num_attention_heads": self.num_heads,
            "attention_head_dim": self.head_dim,
            "in_channels": self.in_dim,
            "out_channels": self.out_dim,
            "text_dim": self.text_dim,
            "freq_dim": self.freq_dim,
            "ffn_dim": self.ffn_dim,
            "num_layers": self.num_layers,
            "cross_attn_norm": True,
            "qk_norm": "rms_norm_across_heads",
            "eps": self.eps,
            "image_dim": self.image_dim,
            "added_kv_proj_dim": self.dim,
            "rope_max_seq_len": 1024,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The published model (Wan2.1-I2V-14B-480P + InfiniteTalk).
FULL = ModelConfig()

#: A tiny model for CPU tests and the ``--tiny`` benchmark: same structure, small widths.
TINY = ModelConfig(
    dim=32,
    ffn_dim=64,
    num_heads=2,
    num_layers=2,
    text_dim=16,
    freq_dim=32,
    image_dim=80,  # tiny CLIP: one 80-wide head (ViT-H head width)
    audio_dim=16,
    audio_layers=2,
    audio_hidden=32,
    audio_tokens=4,
)


def from_wan_config(wan: dict[str, Any], base: ModelConfig = FULL) -> ModelConfig:
    """Map an original Wan ``config.json`` (keys dim, ffn_dim, num_heads, ...) onto a ModelConfig.

    Audio sizes are not in Wan's file (the adapter is a separate download); they come from ``base``.
    """
    if wan.get("model_type", "i2v") != "i2v":
        from infinitetalk.errors import EngineError

        raise EngineError(
            f"the base model config says model_type={wan.get('model_type')!r}; InfiniteTalk needs the Wan2.1 "
            "image-to-video model (model_type 'i2v', Wan-AI/Wan2.1-I2V-14B-480P)"
        )
    # text_dim / image_dim are not in the official file (fixed 4096 / 1280); small test models write them.
    names = {
        "dim",
        "ffn_dim",
        "num_heads",
        "num_layers",
        "in_dim",
        "out_dim",
        "freq_dim",
        "eps",
        "text_dim",
        "image_dim",
    }
    return replace(base, **{k: wan[k] for k in names if k in wan})


def to_wan_config(cfg: ModelConfig) -> dict[str, Any]:
    """The original Wan ``config.json`` for a ModelConfig (what ``from_wan_config`` reads back)."""
    return {
        "_class_name": "WanModel",
        "model_type": "i2v",
        "dim": cfg.dim,
        "ffn_dim": cfg.ffn_dim,
        "num_heads": cfg.num_heads,
        "num_layers": cfg.num_layers,
        "in_dim": cfg.in_dim,
        "out_dim": cfg.out_dim,
        "freq_dim": cfg.freq_dim,
        "text_len": 512,
        "text_dim": cfg.text_dim,
        "image_dim": cfg.image_dim,
        "eps": cfg.eps,
    }
