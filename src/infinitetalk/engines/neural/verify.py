"""``infinitetalk models verify``: check a weights folder against the manifest without loading tensor data.

Reads safetensors headers and memory-maps ``.pth`` files (only shapes are touched), then
checks every file, key and shape: the Wan base shards and the adapter against the manifest,
the encoders against the transformers/diffusers models they load into, and the widths
that must agree between parts (T5 width = text_dim, CLIP width = image_dim, wav2vec2 = audio).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
from transformers import CLIPVisionModel, UMT5EncoderModel, Wav2Vec2Config, Wav2Vec2Model

from infinitetalk.engines.neural.configs import FULL, ModelConfig, from_wan_config
from infinitetalk.engines.neural.manifest import adapter_keys, base_keys
from infinitetalk.engines.neural.text_clip import clip_config, convert_clip, convert_t5, t5_config
from infinitetalk.engines.neural.weights import WeightsLayout, model_config_from_headers, pth_shapes, safetensors_shapes

Shape = tuple[int, ...]


@dataclass
class FileCheck:
    name: str
    path: Path
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def compare(found: Mapping[str, Shape], expected: Mapping[str, Shape], limit: int = 5) -> list[str]:
    """Human-readable differences between two key -> shape maps."""
    out = []
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    wrong = [k for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    if missing:
        out.append(
            f"{len(missing)} missing tensors: {', '.join(missing[:limit])}{' ...' if len(missing) > limit else ''}"
        )
    if extra:
        out.append(f"{len(extra)} unexpected tensors: {', '.join(extra[:limit])}{' ...' if len(extra) > limit else ''}")
    for k in wrong[:limit]:
        out.append(f"{k}: shape {tuple(found[k])}, expected {tuple(expected[k])}")
    if len(wrong) > limit:
        out.append(f"... and {len(wrong) - limit} more tensors of the wrong shape")
    return out


def _meta_shapes(build: Callable[[], torch.nn.Module]) -> dict[str, Shape]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in build().state_dict().items()}


def _converted(convert: Callable, shapes: Mapping[str, Shape]) -> dict[str, Shape]:
    out = convert({k: torch.empty(s, device="meta") for k, s in shapes.items()})
    return {k: tuple(v.shape) for k, v in out.items()}


def _check(check: FileCheck, fn: Callable[[], list[str]]) -> FileCheck:
    if not check.path.exists():
        check.problems.append("missing")
        return check
    try:
        check.problems.extend(fn())
    except Exception as exc:  # a damaged file must become a line in the report, not a crash
        check.problems.append(f"unreadable: {type(exc).__name__}: {exc}")
    return check


def verify(root: Path, variants: tuple[str, ...] = ("single",)) -> list[FileCheck]:
    layout = WeightsLayout(Path(root))
    checks: list[FileCheck] = []
    cfg: ModelConfig = FULL
    base_shapes: dict[str, Shape] = {}

    def base() -> list[str]:
        nonlocal cfg
        cfg = from_wan_config(json.loads(layout.base_config.read_text()))
        shards = layout.base_shards
        if not shards:
            return ["no diffusion_pytorch_model*.safetensors shards"]
        for s in shards:
            base_shapes.update(safetensors_shapes(s))
        return compare(base_shapes, dict(base_keys(cfg)))

    checks.append(_check(FileCheck("Wan2.1 I2V base (config + shards)", layout.base_config), base))

    for v in variants:

        def adapter(v: str = v) -> list[str]:
            nonlocal cfg
            shapes = safetensors_shapes(layout.adapter(v))
            try:
                cfg = model_config_from_headers(json.loads(layout.base_config.read_text()), base_shapes, shapes)
            except Exception:  # sizes stay the published ones; the comparison below reports what is off
                pass
            return compare(shapes, dict(adapter_keys(cfg)))

        checks.append(_check(FileCheck(f"InfiniteTalk {v} adapter", layout.adapter(v)), adapter))

    def t5() -> list[str]:
        shapes = pth_shapes(layout.t5)
        expected = _meta_shapes(lambda: UMT5EncoderModel(t5_config(shapes)))
        expected.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight
        out = compare(_converted(convert_t5, shapes), expected)
        width = shapes["token_embedding.weight"][1]
        if width != cfg.text_dim:
            out.append(f"T5 width {width} != the transformer's text_dim {cfg.text_dim}")
        return out

    checks.append(_check(FileCheck("T5 text encoder", layout.t5), t5))

    def tokenizer() -> list[str]:
        names = {p.name for p in layout.tokenizer.iterdir()}
        return [] if names & {"tokenizer.json", "spiece.model"} else ["no tokenizer.json or spiece.model"]

    checks.append(_check(FileCheck("T5 tokenizer", layout.tokenizer), tokenizer))

    def clip() -> list[str]:
        shapes = pth_shapes(layout.clip)
        model_keys = _meta_shapes(lambda: CLIPVisionModel(clip_config(shapes)))
        prefix = "vision_model." if any(k.startswith("vision_model.") for k in model_keys) else ""
        out = compare(_converted(lambda sd: convert_clip(sd, prefix), shapes), model_keys)
        width = shapes["visual.patch_embedding.weight"][0]
        if width != cfg.image_dim:
            out.append(f"CLIP width {width} != the transformer's image_dim {cfg.image_dim}")
        return out

    checks.append(_check(FileCheck("CLIP image encoder", layout.clip), clip))

    def vae() -> list[str]:
        shapes = pth_shapes(layout.vae)
        base_dim = shapes["encoder.conv1.weight"][0]
        return compare(
            _converted(convert_wan_vae_to_diffusers, shapes), _meta_shapes(lambda: AutoencoderKLWan(base_dim=base_dim))
        )

    checks.append(_check(FileCheck("Wan VAE", layout.vae), vae))

    def wav2vec() -> list[str]:
        folder = layout.wav2vec
        out = [f"missing {n}" for n in ("config.json", "preprocessor_config.json") if not (folder / n).exists()]
        if out:
            return out
        config = Wav2Vec2Config.from_pretrained(str(folder))
        if config.hidden_size != cfg.audio_dim or config.num_hidden_layers != cfg.audio_layers:
            out.append(
                f"wav2vec2 is {config.num_hidden_layers} x {config.hidden_size}; the adapter expects "
                f"{cfg.audio_layers} x {cfg.audio_dim}"
            )
        st = folder / "model.safetensors"
        if st.exists():
            found = safetensors_shapes(st)
            expected = _meta_shapes(lambda: Wav2Vec2Model(config))
            # checkpoints saved from pretraining models carry a "wav2vec2." prefix and extra heads
            found = {k.removeprefix("wav2vec2."): s for k, s in found.items()}
            out += compare(
                {
                    k: s
                    for k, s in found.items()
                    if k in expected or not k.startswith(("project", "quantizer", "lm_head"))
                },
                expected,
            )
        elif not (folder / "pytorch_model.bin").exists():
            out.append("no model.safetensors or pytorch_model.bin")
        return out

    checks.append(_check(FileCheck("wav2vec2 audio encoder", layout.wav2vec), wav2vec))
    return checks
