from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2Config, Wav2Vec2Model

from infinitetalk.engines.neural.audio import AudioEncoder, PiecewiseFrontEnd, loudness_normalize
from infinitetalk.engines.neural.plan import LiveBytes


def _speech(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.05 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_loudness_normalisation() -> None:
    out = loudness_normalize(_speech(2.0))
    assert abs(pyloudnorm.Meter(16000).integrated_loudness(out.astype(np.float64)) - (-23.0)) < 0.1
    silence = np.zeros(16000, np.float32)
    assert np.array_equal(loudness_normalize(silence), silence)  # -inf LUFS: left alone


def test_each_track_is_normalised_on_its_own_speech() -> None:
    """generate_infinitetalk.py normalises each speaker's file (audio_prepare_single) BEFORE audio_prepare_multi
    pads it with zeros ('add': the second speaker after the first). Ours arrive padded: same result."""
    first, second = _speech(1.5), 0.5 * _speech(2.0)
    meter = pyloudnorm.Meter(16000)
    official = []
    for raw in (first, second):
        raw = raw.astype(np.float64)
        official.append(pyloudnorm.normalize.loudness(raw, meter.integrated_loudness(raw), -23.0))
    padded = [np.concatenate([first, np.zeros_like(second)]), np.concatenate([np.zeros_like(first), second])]
    for ours, expected, zeros_at in zip(padded, official, (slice(first.size, None), slice(0, first.size))):
        out = loudness_normalize(ours)
        assert np.allclose(out[out != 0], expected.astype(np.float32)[expected != 0], atol=1e-6)
        assert np.all(out[zeros_at] == 0)
    # measuring the padded track instead (what we did before) gives another gain
    whole = meter.integrated_loudness(padded[1].astype(np.float64))
    assert abs(whole - meter.integrated_loudness(second.astype(np.float64))) > 0.1


def test_hook_resamples_to_video_rate(tiny_weights) -> None:
    enc = AudioEncoder.from_folder(tiny_weights.wav2vec)
    audio = _speech(1.3)
    emb = enc(audio)
    assert emb.shape == (int(1.3 * 25), 2, 16)

    # The same by hand: CNN features -> linear resample (align_corners) -> projection -> transformer
    model = enc.model
    values = enc.extractor(loudness_normalize(audio), sampling_rate=16000, return_tensors="pt").input_values
    with torch.no_grad():
        x = values[:, None]
        for layer in model.feature_extractor.conv_layers:
            x = layer(x)
        x = F.interpolate(x, size=32, mode="linear", align_corners=True).transpose(1, 2)
        hidden, _ = model.feature_projection(x)
        encoder = model.encoder
        hidden = encoder.layer_norm(hidden + encoder.pos_conv_embed(hidden))
        layers = []
        for layer in encoder.layers:
            out = layer(hidden)
            hidden = out[0] if isinstance(out, tuple) else out
            layers.append(hidden)
    expected = torch.stack(layers, dim=2)[0]
    assert torch.allclose(emb, expected, atol=1e-5)
    # the hook only acts during our call: the plain model still runs at ~50 Hz
    with torch.no_grad():
        assert model(values).last_hidden_state.shape[1] > 60


def _front_end_model(norm: str) -> Wav2Vec2Model:
    """wav2vec2's front end at its real kernels and strides (400 samples seen per step, a 320 stride), narrow."""
    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(16,) * 7, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
                            feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
    model = Wav2Vec2Model(config).eval()
    with torch.no_grad():  # a GroupNorm at its initial weights hides a wrong mean or scale: make them matter
        for p in model.feature_extractor.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_a_long_track_in_pieces_gives_the_whole_track_features(norm: str) -> None:
    """The front end a piece at a time (with the first layer's GroupNorm over the whole track) is the stock one."""
    model = _front_end_model(norm)
    values = torch.from_numpy(_speech(3.37))[None] * 20  # loud enough that the norm's statistics matter
    with torch.no_grad():
        whole = model.feature_extractor(values)
        pieces = PiecewiseFrontEnd(model.feature_extractor, piece_steps=7)(values)
    assert pieces.shape == whole.shape and whole.shape[-1] > 7 * 20
    assert torch.allclose(pieces, whole, rtol=1e-4, atol=1e-5), (pieces - whole).abs().max()


def test_front_end_memory_does_not_grow_with_the_track() -> None:
    """What the front end holds beyond its input and its output is one piece's work, whatever the length."""
    model = _front_end_model("group")
    front = PiecewiseFrontEnd(model.feature_extractor, piece_steps=100)
    held = []
    for seconds in (10, 40):
        values = torch.from_numpy(_speech(seconds))[None]
        with torch.no_grad(), LiveBytes() as live:
            out = front(values)
        held.append(live.peak - out.untyped_storage().nbytes())
    assert held[1] < 1.1 * held[0], held
    with torch.no_grad(), LiveBytes() as live:  # the stock forward over 40 s: four times the 10 s one's work
        whole = model.feature_extractor.forward(values)
    assert live.peak - whole.untyped_storage().nbytes() > 3 * held[0]
