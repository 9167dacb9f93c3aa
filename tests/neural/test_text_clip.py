"""T5 and CLIP load strictly from Wan-style .pth files through the key conversion."""

from __future__ import annotations

import torch

from infinitetalk.engines.neural.text_clip import (
    ImageEncoder,
    TextEncoder,
    clean_prompt,
    load_clip,
    load_t5,
)


def test_t5_keys_land_in_place(tiny_weights) -> None:
    sd = torch.load(tiny_weights.t5, weights_only=True)
    model = load_t5(tiny_weights.t5, "cpu", torch.float32)
    block = model.encoder.block[1]
    assert torch.equal(block.layer[1].DenseReluDense.wi_0.weight, sd["blocks.1.ffn.gate.0.weight"])
    assert torch.equal(block.layer[1].DenseReluDense.wi_1.weight, sd["blocks.1.ffn.fc1.weight"])
    assert torch.equal(
        block.layer[0].SelfAttention.relative_attention_bias.weight, sd["blocks.1.pos_embedding.embedding.weight"]
    )
    assert torch.equal(model.get_input_embeddings().weight, sd["token_embedding.weight"])


def test_text_embeddings_are_zero_past_the_prompt(tiny_weights) -> None:
    enc = TextEncoder(load_t5(tiny_weights.t5, "cpu", torch.float32), tiny_weights.tokenizer)
    out = enc("a person talks")
    assert out.shape == (1, 512, 16)
    assert out[0, :4].abs().sum(-1).gt(0).all()  # 3 words + </s>
    assert out[0, 4:].abs().sum() == 0


def test_clip_split_qkv_and_penultimate_block(tiny_weights) -> None:
    sd = torch.load(tiny_weights.clip, weights_only=True)
    model = load_clip(tiny_weights.clip, "cpu", torch.float32)
    layer = model.get_submodule(next(n for n, _ in model.named_modules() if n.endswith("layers.1")))
    qkv = sd["visual.transformer.1.attn.to_qkv.weight"]
    assert torch.equal(layer.self_attn.k_proj.weight, qkv[80:160])
    assert torch.equal(layer.self_attn.v_proj.bias, sd["visual.transformer.1.attn.to_qkv.bias"][160:])
    frame = torch.rand(1, 3, 40, 56) * 2 - 1
    tokens = ImageEncoder(model)(frame)
    assert tokens.shape == (1, 5, 80)  # 2x2 patches + class token at the tiny 28 px size


def test_prompt_clean_up_as_wan_tokenizer() -> None:
    """HuggingfaceTokenizer(clean='whitespace') in wan/modules/tokenizers.py: ftfy.fix_text, html.unescape twice,
    strip, whitespace runs to one space."""
    assert clean_prompt("  A   person\n\ttalks  ") == "A person talks"
    assert clean_prompt("Tom &amp;amp; Jerry &lt;3") == "Tom & Jerry <3"
    assert clean_prompt("“quoted” ‘single’") == "\"quoted\" 'single'"  # ftfy uncurls quotes
    assert clean_prompt("一个人，在说话。　ＯＫ") == "一个人,在说话。 OK"  # and gives fullwidth forms their usual width


def test_text_encoder_cleans_the_prompt(tiny_weights) -> None:
    enc = TextEncoder(load_t5(tiny_weights.t5, "cpu", torch.float32), tiny_weights.tokenizer)
    assert torch.equal(enc("  a person\n talks &amp;amp; "), enc("a person talks &"))
