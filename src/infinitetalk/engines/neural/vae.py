"""The Wan VAE: diffusers' ``AutoencoderKLWan``, loaded from ``Wan2.1_VAE.pth`` via its single-file converter."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

from infinitetalk.errors import EngineError


def load_vae(path: Path, device: torch.device | str, dtype: torch.dtype = torch.float32) -> AutoencoderKLWan:
    sd = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    try:
        base_dim = sd["encoder.conv1.weight"].shape[0]
    except KeyError as exc:
        raise EngineError(
            f"{path.name} is not a Wan 2.1 VAE (no encoder.conv1.weight); run `infinitetalk models verify`"
        ) from exc
    with torch.device("meta"):
        vae = AutoencoderKLWan(base_dim=base_dim)
    converted = convert_wan_vae_to_diffusers(dict(sd))
    result = vae.load_state_dict(
        {k: v.to(device=device, dtype=dtype) for k, v in converted.items()}, strict=False, assign=True
    )
    if result.missing_keys or result.unexpected_keys:
        raise EngineError(
            f"{path.name}: missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}; "
            "run `infinitetalk models verify`"
        )
    return vae.eval().requires_grad_(False)


class VideoVAE:
    """Pixels [B, 3, F, H, W] in [-1, 1] <-> normalised latents [B, 16, 1 + (F-1)/4, H/8, W/8]."""

    def __init__(self, vae: AutoencoderKLWan) -> None:
        self.vae = vae
        z = vae.config.z_dim
        self.mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1)
        self.inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        # The posterior mean (argmax), as Wan's own encode does: conditioning must be deterministic.
        lat = self.vae.encode(video.to(self.vae.dtype)).latent_dist.mode().float()
        return (lat - self.mean.to(lat.device)) * self.inv_std.to(lat.device)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        lat = latents.float() / self.inv_std.to(latents.device) + self.mean.to(latents.device)
        return self.vae.decode(lat.to(self.vae.dtype)).sample.float().clamp(-1, 1)
