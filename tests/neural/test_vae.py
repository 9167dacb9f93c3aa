from __future__ import annotations

import pytest
import torch
from neural_factories import write_vae

from infinitetalk.engines.neural.vae import VideoVAE, load_vae
from infinitetalk.engines.neural.weights import WeightsLayout


@pytest.mark.slow  # over 10 s on 2 busy cores
def test_vae_loads_from_wan_pth(tmp_path) -> None:
    layout = WeightsLayout(tmp_path)
    layout.base_dir.mkdir(parents=True)
    original = write_vae(layout, torch.Generator().manual_seed(0)).eval()
    vae = load_vae(layout.vae, "cpu")
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        expected = original.encode(video).latent_dist.mode()
    wrapped = VideoVAE(vae)
    lat = wrapped.encode(video)
    assert lat.shape == (1, 16, 2, 2, 2)
    assert torch.allclose(lat / wrapped.inv_std + wrapped.mean, expected, atol=1e-5)
    assert wrapped.decode(lat).shape == (1, 3, 5, 16, 16)
