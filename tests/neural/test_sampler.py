from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from infinitetalk.engines.neural.sampler import Guidance, euler_step, sigma_schedule, timesteps


def test_sigma_schedule_by_hand() -> None:
    s = sigma_schedule(4, shift=7.0)
    t = [1.0, 0.667, 0.334, 0.001]
    expected = [7 * v / (1 + 6 * v) for v in t] + [0.0]
    assert torch.allclose(s, torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert s[0] == 1.0 and s[-1] == 0.0
    assert torch.allclose(timesteps(s), torch.tensor(expected[:-1], dtype=torch.float64) * 1000)


def test_matches_diffusers_scheduler_given_these_sigmas() -> None:
    sigmas = sigma_schedule(5, 7.0)
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    sched.set_timesteps(sigmas=sigmas[:-1].float().tolist())
    x, v = torch.randn(2, 3), torch.randn(2, 3)
    ours, theirs = x.clone(), x.clone()
    for i, t in enumerate(sched.timesteps):
        ours = euler_step(ours, v, float(sigmas[i]), float(sigmas[i + 1]))
        theirs = sched.step(v, t, theirs).prev_sample
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_three_pass_formula() -> None:
    g = Guidance(text_scale=5.0, audio_scale=4.0)
    cond, no_text, uncond = torch.tensor([3.0]), torch.tensor([2.0]), torch.tensor([1.5])
    assert g.passes == 3
    # 1.5 + 5*(3-2) + 4*(2-1.5) = 8.5
    assert g.combine([cond, no_text, uncond]).item() == 8.5


def test_two_pass_formula() -> None:
    g = Guidance(text_scale=1.0, audio_scale=2.0)
    assert g.passes == 2
    # 1 + 2*(3-1) = 5
    assert g.combine([torch.tensor([3.0]), torch.tensor([1.0])]).item() == 5.0


def test_no_guidance_is_one_pass() -> None:
    g = Guidance(text_scale=1.0, audio_scale=1.0)
    assert g.passes == 1
    assert g.combine([torch.tensor([3.0])]).item() == 3.0
    # the same as the two-pass formula with scale 1: no_audio + 1*(cond - no_audio) = cond
    assert abs(Guidance(1.0, 1.0 + 1e-9).combine([torch.tensor([3.0]), torch.tensor([7.0])]).item() - 3.0) < 1e-6
