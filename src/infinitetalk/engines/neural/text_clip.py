"""Wan's T5 text encoder and CLIP image encoder, loaded from Wan's ``.pth`` files into transformers models.

Wan ships its own key names; these functions rename them (and split CLIP's fused qkv) so
``UMT5EncoderModel`` and ``CLIPVisionModel`` load them strictly. Model sizes are read from
the tensor shapes, so the same code loads the 11B-parameter originals and the tiny test files.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel
from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings

from infinitetalk.errors import EngineError

TEXT_LEN = 512
#: open-clip ViT-H/14 uses 80-wide attention heads (16 heads of 1280).
CLIP_HEAD_DIM = 80
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_T5_BLOCK = {
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm1.weight": "layer.0.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",  # gelu(gate(x)) * fc1(x)
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
}


def _load_pth(path: Path) -> dict[str, torch.Tensor]:
    sd = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    return sd.get("state_dict", sd) if isinstance(sd, dict) else sd


def convert_t5(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Wan T5 encoder keys -> ``UMT5EncoderModel`` keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key == "token_embedding.weight":
            out["shared.weight"] = value
        elif key == "norm.weight":
            out["encoder.final_layer_norm.weight"] = value
        elif m := re.fullmatch(r"blocks\.(\d+)\.(.+)", key):
            if m[2] not in _T5_BLOCK:
                raise EngineError(f"unexpected T5 tensor {key!r}; is this Wan's models_t5_umt5-xxl-enc-bf16.pth?")
            out[f"encoder.block.{m[1]}.{_T5_BLOCK[m[2]]}"] = value
        else:
            raise EngineError(f"unexpected T5 tensor {key!r}; is this Wan's models_t5_umt5-xxl-enc-bf16.pth?")
    return out


def t5_config(shapes: Mapping[str, tuple[int, ...]]) -> UMT5Config:
    vocab, d_model = shapes["token_embedding.weight"]
    buckets, heads = shapes["blocks.0.pos_embedding.embedding.weight"]
    layers = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("blocks."))
    return UMT5Config(
        vocab_size=vocab,
        d_model=d_model,
        d_kv=d_model // heads,
        d_ff=shapes["blocks.0.ffn.fc1.weight"][0],
        num_layers=layers,
        num_heads=heads,
        relative_attention_num_buckets=buckets,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",  # Wan's T5 uses tanh-approximate GELU: transformers' gelu_new
        tie_word_embeddings=False,
    )


def convert_clip(sd: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """open-clip visual tower keys (``visual.*``) -> ``CLIPVisionModel`` keys; the text tower is dropped."""
    out: dict[str, torch.Tensor] = {}
    names = {
        "norm1": "layer_norm1",
        "norm2": "layer_norm2",
        "mlp.0": "mlp.fc1",
        "mlp.2": "mlp.fc2",
        "attn.proj": "self_attn.out_proj",
    }
    for key, value in sd.items():
        if not key.startswith("visual.") or key.startswith("visual.head"):
            continue  # text tower, logit scale and the projection head are unused
        k = key[len("visual.") :]
        if k == "patch_embedding.weight":
            out[prefix + "embeddings.patch_embedding.weight"] = value
        elif k == "cls_embedding":
            out[prefix + "embeddings.class_embedding"] = value.reshape(-1)
        elif k == "pos_embedding":
            out[prefix + "embeddings.position_embedding.weight"] = value.reshape(value.shape[-2], value.shape[-1])
        elif k.startswith("pre_norm."):
            out[prefix + "pre_layrnorm." + k.split(".", 1)[1]] = value
        elif k.startswith("post_norm."):
            out[prefix + "post_layernorm." + k.split(".", 1)[1]] = value
        elif m := re.fullmatch(r"transformer\.(\d+)\.(.+)\.(weight|bias)", k):
            base = f"{prefix}encoder.layers.{m[1]}."
            if m[2] == "attn.to_qkv":
                for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0), strict=True):
                    out[f"{base}self_attn.{name}.{m[3]}"] = part
            elif m[2] in names:
                out[f"{base}{names[m[2]]}.{m[3]}"] = value
            else:
                raise EngineError(f"unexpected CLIP tensor {key!r}; is this Wan's open-clip ViT-H/14 file?")
        else:
            raise EngineError(f"unexpected CLIP tensor {key!r}; is this Wan's open-clip ViT-H/14 file?")
    return out


def clip_config(shapes: Mapping[str, tuple[int, ...]]) -> CLIPVisionConfig:
    hidden, _, patch, _ = shapes["visual.patch_embedding.weight"]
    positions = shapes["visual.pos_embedding"][-2]
    layers = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("visual.transformer."))
    return CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=shapes["visual.transformer.0.mlp.0.weight"][0],
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // CLIP_HEAD_DIM),
        image_size=round((positions - 1) ** 0.5) * patch,
        patch_size=patch,
        hidden_act="gelu",  # exact GELU in Wan's ViT-H, not CLIP's quick_gelu
        layer_norm_eps=1e-5,
    )


def _strict_load(model: torch.nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    result = model.load_state_dict(sd, strict=False, assign=True)
    missing = [k for k in result.missing_keys if "position_ids" not in k]
    if missing or result.unexpected_keys:
        raise EngineError(
            f"{what}: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}; run `infinitetalk models verify`"
        )


def load_t5(path: Path, device: torch.device | str, dtype: torch.dtype) -> UMT5EncoderModel:
    sd = _load_pth(path)
    with torch.device("meta"):
        model = UMT5EncoderModel(t5_config({k: tuple(v.shape) for k, v in sd.items()}))
    converted = {k: v.to(device=device, dtype=dtype) for k, v in convert_t5(sd).items()}
    converted["encoder.embed_tokens.weight"] = converted["shared.weight"]
    _strict_load(model, converted, path.name)
    return model.eval().requires_grad_(False)


def load_clip(path: Path, device: torch.device | str, dtype: torch.dtype) -> CLIPVisionModel:
    sd = _load_pth(path)
    with torch.device("meta"):
        model = CLIPVisionModel(clip_config({k: tuple(v.shape) for k, v in sd.items()}))
    prefix = "vision_model." if any(k.startswith("vision_model.") for k in model.state_dict()) else ""
    converted = {k: v.to(device=device, dtype=dtype) for k, v in convert_clip(sd, prefix).items()}
    _strict_load(model, converted, path.name)
    # position_ids is a non-persistent buffer made on meta; rebuild it on the device.
    emb = next(m for m in model.modules() if isinstance(m, CLIPVisionEmbeddings))
    emb.register_buffer("position_ids", torch.arange(emb.num_positions, device=device)[None], persistent=False)
    return model.eval().requires_grad_(False)


# Parts of ftfy.fix_text (ftfy 6's default fixes) that change ordinary prompts: fullwidth and
# halfwidth forms to their usual width (U+3000 to a space, U+FF01-U+FFEF by NFKC: a Chinese
# prompt's '，' becomes ','), curly quotes to straight ones, Latin ligatures split, NFC.
_WIDTH = {0x3000: " "} | {
    i: unicodedata.normalize("NFKC", chr(i))
    for i in range(0xFF01, 0xFFF0)
    if unicodedata.normalize("NFKC", chr(i)) != chr(i)
}
_QUOTES = {c: "'" for c in range(0x2018, 0x201C)} | {0x02BC: "'"} | {c: '"' for c in range(0x201C, 0x2020)}
_LIGATURES = {c: unicodedata.normalize("NFKC", chr(c)) for c in range(0xFB00, 0xFB07)}


def clean_prompt(text: str) -> str:
    """Wan's prompt clean-up before tokenising (``HuggingfaceTokenizer(clean='whitespace')`` in
    ``wan/modules/tokenizers.py``): ftfy's fixes (the subset above; ftfy unescapes HTML too unless
    the text has a '<'), HTML unescaped twice, whitespace runs collapsed to one space, stripped.
    ftfy's repair of mis-decoded text (mojibake) and control characters is not reproduced."""
    text = unicodedata.normalize("NFC", text.translate(_WIDTH).translate(_QUOTES).translate(_LIGATURES))
    if "<" not in text:
        text = html.unescape(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


class TextEncoder:
    """Prompt -> [1, 512, text_dim] embeddings, zero past the prompt's tokens (as Wan pads them)."""

    def __init__(self, model: UMT5EncoderModel, tokenizer_dir: Path) -> None:
        self.model = model
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))

    @torch.no_grad()
    def __call__(self, prompt: str) -> torch.Tensor:
        ids = self.tokenizer(
            [clean_prompt(prompt)],
            padding="max_length",
            max_length=TEXT_LEN,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        device = self.model.device
        mask = ids.attention_mask.to(device)
        out = self.model(input_ids=ids.input_ids.to(device), attention_mask=mask).last_hidden_state
        return out * mask[..., None].to(out.dtype)


class ImageEncoder:
    """RGB frame in [-1, 1] [1, 3, H, W] -> penultimate CLIP block tokens [1, 257, width]."""

    def __init__(self, model: CLIPVisionModel) -> None:
        self.model = model

    @torch.no_grad()
    def __call__(self, frame: torch.Tensor) -> torch.Tensor:
        size = self.model.config.image_size
        x = F.interpolate(frame.float(), size=(size, size), mode="bicubic", align_corners=False)  # no crop
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        x = ((x * 0.5 + 0.5) - mean) / std
        out = self.model(pixel_values=x.to(self.model.dtype), output_hidden_states=True)
        return out.hidden_states[-2]  # after block 31 of 32, before the last block and post-norm
