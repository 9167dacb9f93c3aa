"""Speech -> wav2vec2 features at 25 Hz, and the +-2 frame windows per video frame.

The official code overrides ``Wav2Vec2Model.forward`` to resample the CNN features to the
video rate before the transformer; that breaks on transformers 5. Here a forward hook on the
feature extractor does the same resampling, so the stock model runs unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyloudnorm
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

SAMPLE_RATE = 16_000
TARGET_LUFS = -23.0


def loudness_normalize(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Normalise to -23 LUFS, measured on the speaker's own speech.

    The official script normalises each speaker's file before it lays the tracks out in time
    (``audio_prepare_single`` before the zero padding of ``audio_prepare_multi``); our tracks
    arrive already laid out, so the loudness is measured between the first and the last
    non-zero sample, which is that file again, and the gain applies to the whole track (its
    zeros stay zeros). Left alone, as the official ``abs(loudness) > 100`` check leaves it,
    when the loudness is not finite or beyond +-100 LUFS (silence, too quiet), and, unlike
    the official code, which fails there, when the speech is shorter than one 400 ms block.
    """
    audio = np.asarray(audio, dtype=np.float64)
    nonzero = np.flatnonzero(audio)
    speech = audio[nonzero[0] : nonzero[-1] + 1] if nonzero.size else audio[:0]
    if speech.size < int(0.4 * sr):  # pyloudnorm needs one 400 ms gating block
        return audio.astype(np.float32)
    loudness = pyloudnorm.Meter(sr).integrated_loudness(speech)
    if not np.isfinite(loudness) or abs(loudness) > 100:
        return audio.astype(np.float32)
    gain = 10.0 ** ((TARGET_LUFS - loudness) / 20.0)
    return (audio * gain).astype(np.float32)


def audio_windows(emb: torch.Tensor, start: int, frames: int, radius: int = 2) -> torch.Tensor:
    """Per video frame t in [start, start+frames): rows clamp(t-2 .. t+2) of ``emb`` [T, L, C] -> [frames, 5, L, C]."""
    t = torch.arange(start, start + frames)[:, None] + torch.arange(-radius, radius + 1)[None]
    return emb[t.clamp(0, emb.shape[0] - 1)]


#: Front-end steps (50 a second) convolved at a time: about 200 MB of float32 at wav2vec2-base's widths, where
#: the whole track at once takes about 16 MiB per second of speech (9.5 GB for ten minutes).
PIECE_STEPS = 500


class PiecewiseFrontEnd:
    """wav2vec2's convolutional front end over a long track a piece at a time, with the same result.

    Each output step sees a fixed window of samples (400 at a 320 stride on wav2vec2), so a piece of steps
    needs only its own samples; the one global part is the first layer's GroupNorm (``feat_extract_norm
    == "group"``), a mean and variance per channel over the whole track: a first pass gathers them piece by
    piece, the second normalises each piece with them. A track of one piece runs the stock forward, so short
    tracks give the stock model's bits.
    """

    def __init__(self, encoder: torch.nn.Module, piece_steps: int = PIECE_STEPS) -> None:
        self.layers = list(encoder.conv_layers)
        self.piece_steps = piece_steps
        self.stock = encoder.forward
        convs = [layer.conv for layer in self.layers]
        self.stride = int(np.prod([c.stride[0] for c in convs]))
        # samples one output step sees: the first kernel, then each later kernel's extra reach at its input's stride
        self.reach = convs[0].kernel_size[0] + sum(
            (c.kernel_size[0] - 1) * int(np.prod([p.stride[0] for p in convs[:i]])) for i, c in enumerate(convs) if i)
        first = self.layers[0]
        self.global_norm = isinstance(getattr(first, "layer_norm", None), torch.nn.GroupNorm)

    def steps(self, samples: int) -> int:
        n = samples
        for layer in self.layers:
            n = (n - layer.conv.kernel_size[0]) // layer.conv.stride[0] + 1
        return n

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        total = self.steps(values.shape[-1])
        if total <= self.piece_steps:
            return self.stock(values)
        x = values[:, None]
        stats = self._first_layer_stats(x) if self.global_norm else None
        pieces = []
        for a in range(0, total, self.piece_steps):
            b = min(a + self.piece_steps, total)
            h = x[..., a * self.stride : (b - 1) * self.stride + self.reach]
            for i, layer in enumerate(self.layers):
                h = self._first_layer(h, stats) if i == 0 and stats is not None else layer(h)
            pieces.append(h)
        return torch.cat(pieces, dim=-1)

    def _first_layer_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per channel, the mean and (biased) variance of the first convolution's output over the whole track."""
        conv = self.layers[0].conv
        k, s = conv.kernel_size[0], conv.stride[0]
        n = (x.shape[-1] - k) // s + 1
        step = self.piece_steps * self.stride // s
        total = sq = 0.0
        for a in range(0, n, step):
            h = conv(x[..., a * s : (min(a + step, n) - 1) * s + k]).double()
            total = total + h.sum(dim=(0, 2))
            sq = sq + (h * h).sum(dim=(0, 2))
        count = n * x.shape[0]
        mean = total / count
        return mean, (sq / count - mean * mean).clamp_min(0)

    def _first_layer(self, h: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        layer, (mean, var) = self.layers[0], stats
        norm: torch.nn.GroupNorm = layer.layer_norm
        h = layer.conv(h)
        scale = (norm.weight.double() / torch.sqrt(var + norm.eps)).to(h.dtype)
        shift = (norm.bias.double() - mean * norm.weight.double() / torch.sqrt(var + norm.eps)).to(h.dtype)
        return layer.activation(h * scale[:, None] + shift[:, None])


class AudioEncoder:
    """16 kHz mono speech -> [video frames, layers, 768] wav2vec2 hidden states at the video rate."""

    def __init__(self, model: Wav2Vec2Model, extractor: Wav2Vec2FeatureExtractor, fps: int = 25,
                 piece_steps: int = PIECE_STEPS) -> None:
        self.model = model
        self.extractor = extractor
        self.fps = fps
        self._steps: int | None = None
        # the model's own forward calls its front end; ours bounds that call's memory on a long track
        model.feature_extractor.forward = PiecewiseFrontEnd(model.feature_extractor, piece_steps)
        model.feature_extractor.register_forward_hook(self._resample)

    @classmethod
    def from_folder(cls, folder: Path, device: torch.device | str = "cpu", fps: int = 25) -> AudioEncoder:
        model = Wav2Vec2Model.from_pretrained(str(folder)).to(device).eval().requires_grad_(False)
        return cls(model, Wav2Vec2FeatureExtractor.from_pretrained(str(folder)), fps)

    def _resample(self, module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        # CNN output is [B, C, ~50 Hz steps]; linear interpolation to the video's frame count.
        if self._steps is None:
            return output
        return F.interpolate(output, size=self._steps, mode="linear", align_corners=True)

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, num_frames: int | None = None) -> torch.Tensor:
        audio = loudness_normalize(audio)
        steps = num_frames if num_frames is not None else int(len(audio) / SAMPLE_RATE * self.fps)
        values = self.extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_values
        device = next(self.model.parameters()).device
        self._steps = steps
        try:
            out = self.model(values.to(device), output_hidden_states=True)
        finally:
            self._steps = None
        # hidden_states[0] is the projected CNN features; the embedding is the transformer layers'.
        return torch.stack(out.hidden_states[1:], dim=2)[0].float()  # [steps, layers, C]
