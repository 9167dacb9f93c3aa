"""The flow-matching Euler sampler and the two classifier-free guidance formulas."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def sigma_schedule(steps: int, shift: float) -> torch.Tensor:
    """``steps`` shifted sigmas from 1 towards 0.001, then a final 0: sigma' = s*t / (1 + (s-1)*t)."""
    t = torch.linspace(1.0, 0.001, steps, dtype=torch.float64)
    shifted = shift * t / (1 + (shift - 1) * t)
    return torch.cat([shifted, torch.zeros(1, dtype=torch.float64)])


def timesteps(sigmas: torch.Tensor) -> torch.Tensor:
    """Model timesteps (0..1000) for each sigma but the final 0."""
    return sigmas[:-1] * 1000.0


def euler_step(x: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One Euler step of dx/dsigma = v (the model predicts noise - data)."""
    return (x.float() + (sigma_next - sigma) * velocity.float()).to(x.dtype)


@dataclass(frozen=True)
class Guidance:
    text_scale: float = 5.0
    audio_scale: float = 4.0

    @property
    def passes(self) -> int:
        """3 passes (cond, no text, uncond) with text guidance; 2 (cond, no audio) with audio
        guidance only; 1 when both scales are 1 (the formulas then reduce to cond exactly)."""
        if self.text_scale != 1.0:
            return 3
        return 2 if self.audio_scale != 1.0 else 1

    def combine(self, preds: list[torch.Tensor]) -> torch.Tensor:
        if self.passes == 1:
            return preds[0]
        if self.passes == 3:
            cond, no_text, uncond = preds
            return uncond + self.text_scale * (cond - no_text) + self.audio_scale * (no_text - uncond)
        cond, no_audio = preds
        return no_audio + self.audio_scale * (cond - no_audio)
