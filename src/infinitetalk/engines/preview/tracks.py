"""Seeded motion over time: blinks and small head motion. Same seed, same motion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLINK_EVERY_S = (2.0, 6.0)
BLINK_LENGTH_S = (0.15, 0.2)


@dataclass(frozen=True)
class HeadTrack:
    dx: np.ndarray  # pixels
    dy: np.ndarray
    angle: np.ndarray  # degrees


def blink_track(rng: np.random.Generator, num_frames: int, fps: int) -> np.ndarray:
    """Lid closure per frame in [0, 1]: quick down, shut for one frame, slightly slower up, every 2-6 s.

    The shut stretch lasts one frame period, so every blink has a frame with both eyes fully
    closed whatever its phase against the frame clock: a blink that only peaked between two
    frames showed half-closed lids, which read as eyes that never closed (on one eye, a wink).
    """
    closed = np.zeros(num_frames, dtype=np.float32)
    t = rng.uniform(0.6, 2.5)  # the first blink comes early, so short clips have one
    duration = num_frames / fps
    times = (np.arange(num_frames) + 0.5) / fps
    hold = 1 / fps
    while t < duration:
        length = rng.uniform(*BLINK_LENGTH_S)
        if t + length + hold > duration:
            break  # cut off by the end, it would stop half-closed
        down, up = 0.4 * length, 0.6 * length
        closing = np.clip((times - t) / down, 0, 1)
        opening = np.clip((t + down + hold + up - times) / up, 0, 1)
        closed = np.maximum(closed, np.minimum(closing, opening))
        t += length + hold + rng.uniform(*BLINK_EVERY_S)
    return closed.astype(np.float32)


def head_track(rng: np.random.Generator, num_frames: int, fps: int, eye_px: float, energy: np.ndarray) -> HeadTrack:
    """Slow seeded sway (a few pixels, under 1.5 degrees) plus a small nod that follows speech energy."""
    t = np.arange(num_frames) / fps

    def noise(amplitude: float) -> np.ndarray:
        # A sum of slow sines with random frequencies and phases: smooth, never repeating quickly.
        freqs = rng.uniform(0.08, 0.45, 3)
        phases = rng.uniform(0, 2 * np.pi, 3)
        weights = rng.uniform(0.5, 1.0, 3)
        x = sum(w * np.sin(2 * np.pi * f * t + p) for w, f, p in zip(weights, freqs, phases, strict=True))
        return (amplitude * x / weights.sum()).astype(np.float32)

    dx = noise(0.035 * eye_px)
    dy = noise(0.02 * eye_px) + 0.03 * eye_px * energy
    angle = noise(1.2) + 0.4 * energy
    return HeadTrack(dx.astype(np.float32), dy.astype(np.float32), np.clip(angle, -1.5, 1.5).astype(np.float32))
