"""Which engine a server's workers use: the configured one, or the instant one for tests/benchmarks."""

from __future__ import annotations

from infinitetalk.config import Settings
from infinitetalk.engines.base import Engine


def engine_for(settings: Settings) -> Engine:
    if settings.engine == "instant":
        from infinitetalk.workers.instant import InstantEngine

        return InstantEngine()
    from infinitetalk.engines import load_engine  # the preview/neural choice is the engines package's

    return load_engine(settings)
