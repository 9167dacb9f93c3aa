"""Merging LoRA / diff files (lightx2v 4-step distill, FusionX) into base weights, in the original key layout.

Keys (with or without a ``diffusion_model.`` prefix): ``M.lora_down.weight`` [r, in] and
``M.lora_up.weight`` [out, r] add ``scale * up @ down`` to ``M.weight``; ``M.diff`` adds to
``M.weight`` (or to the parameter ``M`` itself, e.g. a modulation table); ``M.diff_b`` adds to
``M.bias``. That is the official loader's arithmetic (``WanLoraWrapper`` in ``wan/wan_lora.py``):
an ``M.alpha`` key is ignored, as it ignores it. Merging happens on the float32 tensors as each
shard is read, before the cast to bf16 (the official loader merges in bf16).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open

_PREFIXES = ("diffusion_model.", "model.diffusion_model.")


def _strip(key: str) -> str:
    for p in _PREFIXES:
        if key.startswith(p):
            return key[len(p) :]
    return key


class LoraDelta:
    """The per-tensor deltas of one or more LoRA files, computed on demand."""

    def __init__(self) -> None:
        self._parts: dict[str, dict[str, torch.Tensor]] = {}
        self._scales: dict[str, float] = {}

    @classmethod
    def from_files(cls, files: Mapping[Path, float]) -> LoraDelta:
        out = cls()
        for path, scale in files.items():
            with safe_open(str(path), framework="pt", device="cpu") as f:
                out.add({k: f.get_tensor(k) for k in f.keys()}, scale, tag=str(path))
        return out

    def add(self, tensors: Mapping[str, torch.Tensor], scale: float = 1.0, tag: str = "lora") -> None:
        """Add one file's tensors (original key names) with a strength ``scale``."""
        for key, value in tensors.items():
            self._parts.setdefault(tag, {})[_strip(key)] = value
        self._scales[tag] = scale

    def __bool__(self) -> bool:
        return bool(self._parts)

    def delta(self, key: str, shape: torch.Size) -> torch.Tensor | None:
        """The float32 delta for base tensor ``key`` (e.g. ``blocks.0.self_attn.q.weight``), or None."""
        total: torch.Tensor | None = None
        for tag, parts in self._parts.items():
            d = _delta_one(parts, key)
            if d is not None:
                d = d.reshape(shape) * self._scales[tag]
                total = d if total is None else total + d
        return total

    def apply(self, key: str, tensor: torch.Tensor) -> torch.Tensor:
        d = self.delta(key, tensor.shape)
        return tensor if d is None else (tensor.float() + d).to(tensor.dtype)


def _delta_one(parts: Mapping[str, torch.Tensor], key: str) -> torch.Tensor | None:
    if key.endswith(".weight"):
        module = key[: -len(".weight")]
        down, up = parts.get(module + ".lora_down.weight"), parts.get(module + ".lora_up.weight")
        out = None
        if down is not None and up is not None:  # no alpha / rank factor: the official loader has none
            out = up.float().flatten(1) @ down.float().flatten(1)
        if module + ".diff" in parts:
            diff = parts[module + ".diff"].float()
            out = diff if out is None else out.reshape(diff.shape) + diff
        return out
    if key.endswith(".bias"):
        b = parts.get(key[: -len(".bias")] + ".diff_b")
        return None if b is None else b.float()
    d = parts.get(key + ".diff")  # a bare parameter such as blocks.N.modulation
    return None if d is None else d.float()
