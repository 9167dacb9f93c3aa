"""Engines behind one small interface (``base.Engine``); pick one with ``get_engine``."""

from __future__ import annotations

from infinitetalk.engines.base import CancelToken, Engine, EngineJob, ProgressCallback, Speaker

__all__ = ["CancelToken", "Engine", "EngineJob", "ProgressCallback", "Speaker"]
