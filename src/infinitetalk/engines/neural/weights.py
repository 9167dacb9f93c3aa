"""The local weights folder: its layout, reading headers, and loading the transformer shard by shard.

Layout (the official repository's ``weights/`` folder, see docs/neural-engine.md)::

    WEIGHTS/
      Wan2.1-I2V-14B-480P/          config.json, diffusion_pytorch_model-0000{1..7}-of-00007.safetensors,
                                    models_t5_umt5-xxl-enc-bf16.pth, google/umt5-xxl/ (tokenizer),
                                    models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth, Wan2.1_VAE.pth
      chinese-wav2vec2-base/        config.json, preprocessor_config.json, model.safetensors (or pytorch_model.bin)
      InfiniteTalk/single/infinitetalk.safetensors
      InfiniteTalk/multi/infinitetalk.safetensors
      loras/*.safetensors           optional (lightx2v, FusionX)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
from safetensors import safe_open

from infinitetalk.engines.neural.configs import ModelConfig, from_wan_config
from infinitetalk.engines.neural.lora import LoraDelta
from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer
from infinitetalk.errors import EngineError

VARIANTS = ("single", "multi")
Shape = tuple[int, ...]


@dataclass(frozen=True)
class WeightsLayout:
    root: Path

    @property
    def base_dir(self) -> Path:
        return self.root / "Wan2.1-I2V-14B-480P"

    @property
    def base_config(self) -> Path:
        return self.base_dir / "config.json"

    @property
    def base_shards(self) -> list[Path]:
        return sorted(self.base_dir.glob("diffusion_pytorch_model*.safetensors"))

    @property
    def t5(self) -> Path:
        return self.base_dir / "models_t5_umt5-xxl-enc-bf16.pth"

    @property
    def tokenizer(self) -> Path:
        return self.base_dir / "google" / "umt5-xxl"

    @property
    def clip(self) -> Path:
        return self.base_dir / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"

    @property
    def vae(self) -> Path:
        return self.base_dir / "Wan2.1_VAE.pth"

    @property
    def wav2vec(self) -> Path:
        return self.root / "chinese-wav2vec2-base"

    def adapter(self, variant: str = "single") -> Path:
        if variant not in VARIANTS:
            raise EngineError(f"unknown InfiniteTalk variant {variant!r}; use one of {', '.join(VARIANTS)}")
        return self.root / "InfiniteTalk" / variant / "infinitetalk.safetensors"

    @property
    def loras(self) -> list[Path]:
        return sorted((self.root / "loras").glob("*.safetensors"))

    def require(self, path: Path, what: str) -> Path:
        if not path.exists():
            raise EngineError(
                f"{what} not found at {path}; download the weights with "
                f"`infinitetalk models download {self.root}` and check them with "
                f"`infinitetalk models verify {self.root}`"
            )
        return path


def safetensors_shapes(path: Path) -> dict[str, Shape]:
    """Key -> shape from a .safetensors header (no tensor data is read)."""
    with safe_open(str(path), framework="pt", device="cpu") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def pth_shapes(path: Path) -> dict[str, Shape]:
    """Key -> shape of a zip-format .pth state dict, memory-mapped so no tensor data is read."""
    sd = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    return {k: tuple(v.shape) for k, v in sd.items() if isinstance(v, torch.Tensor)}


def model_config_from_headers(
    wan_config: Mapping, base: Mapping[str, Shape], adapter: Mapping[str, Shape]
) -> ModelConfig:
    """Sizes from the Wan config.json, completed from tensor shapes (text/image/audio widths)."""
    cfg = from_wan_config(dict(wan_config))
    try:
        audio_dim = adapter["blocks.0.audio_cross_attn.kv_linear.weight"][1]
        hidden, proj1_in = adapter["audio_proj.proj1.weight"]
        return replace(
            cfg,
            text_dim=base["text_embedding.0.weight"][1],
            image_dim=base["img_emb.proj.0.weight"][0],
            audio_dim=audio_dim,
            audio_hidden=hidden,
            audio_layers=proj1_in // (cfg.audio_window * audio_dim),
            audio_tokens=adapter["audio_proj.proj3.weight"][0] // audio_dim,
        )
    except KeyError as exc:
        raise EngineError(f"weights file lacks tensor {exc}; run `infinitetalk models verify` on the folder") from exc


def _keep_fp32(name: str) -> bool:
    return any(p in name for p in InfiniteTalkTransformer._keep_in_fp32_modules)


def _load_into(
    model: torch.nn.Module, tensors: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype
) -> None:
    moved = {k: v.to(device=device, dtype=torch.float32 if _keep_fp32(k) else dtype) for k, v in tensors.items()}
    model.load_state_dict(moved, strict=False, assign=True)


def load_transformer(
    layout: WeightsLayout,
    *,
    variant: str = "single",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    loras: Mapping[Path, float] | None = None,
) -> InfiniteTalkTransformer:
    """Build the model on the meta device and fill it shard by shard, straight at ``device``/``dtype``.

    Base shards go through diffusers' Wan single-file key converter; the adapter file needs
    no renaming. Any key missing, unexpected or mis-shaped is an error (a strict load).
    """
    device = torch.device(device)
    shards = layout.base_shards
    if not shards:
        layout.require(layout.base_dir / "diffusion_pytorch_model-00001-of-00007.safetensors", "Wan base weights")
    adapter_path = layout.require(layout.adapter(variant), f"InfiniteTalk {variant} adapter")
    base_shapes: dict[str, Shape] = {}
    for s in shards:
        base_shapes.update(safetensors_shapes(s))
    adapter_shapes = safetensors_shapes(adapter_path)
    wan_cfg = json.loads(layout.require(layout.base_config, "Wan base config.json").read_text())
    cfg = model_config_from_headers(wan_cfg, base_shapes, adapter_shapes)

    with torch.device("meta"):
        model = InfiniteTalkTransformer.from_model_config(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    delta = LoraDelta.from_files(loras or {})
    seen: set[str] = set()

    def take(part: dict[str, torch.Tensor], origin: Path) -> None:
        for k, v in part.items():
            if k not in expected:
                raise EngineError(
                    f"{origin.name}: unexpected tensor {k!r}; is this the Wan2.1 I2V 14B / InfiniteTalk file?"
                )
            if tuple(v.shape) != expected[k]:
                raise EngineError(f"{origin.name}: tensor {k!r} has shape {tuple(v.shape)}, expected {expected[k]}")
        seen.update(part)
        _load_into(model, part, device, dtype)

    for shard in shards:
        with safe_open(str(shard), framework="pt", device="cpu") as f:
            original = {k: delta.apply(k, f.get_tensor(k)) if delta else f.get_tensor(k) for k in f.keys()}
        take(convert_wan_transformer_to_diffusers(original), shard)
        del original
    with safe_open(str(adapter_path), framework="pt", device="cpu") as f:
        take({k: f.get_tensor(k) for k in f.keys()}, adapter_path)

    missing = sorted(set(expected) - seen)
    if missing:
        raise EngineError(
            f"the weights lack {len(missing)} tensors (first: {missing[:3]}); run `infinitetalk models verify`"
        )
    # The rotary tables are non-persistent buffers: rebuild them (they were made on meta).
    model.rope = WanRotaryPosEmbed(cfg.head_dim, (1, 2, 2), 1024).to(device)
    model.eval().requires_grad_(False)
    return model
