"""Pluggable content-safety check of finished outputs.

The hosted providers expose safety flags (RunPod's ``enable_safety_checker``, WaveSpeed's
``has_nsfw_contents``, APIXO's ``SensitiveContent`` failure code). We ship no classifier, so by default
nothing is checked and every view says so honestly: the verdict is ``None`` ("not checked"), never a
made-up ``False`` from a model that did not run.

An operator installs a checker with ``INFINITETALK_SAFETY_CHECKER=package.module:factory`` (a callable
returning a ``SafetyChecker``). A flagged output fails its task with the failure code ``SensitiveContent``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from infinitetalk.errors import InvalidRequest


@dataclass(frozen=True)
class Verdict:
    #: None: not checked; False: checked and clean; True: flagged.
    nsfw: bool | None
    reason: str = ""

    @property
    def flagged(self) -> bool:
        return self.nsfw is True


NOT_CHECKED = Verdict(nsfw=None)


@runtime_checkable
class SafetyChecker(Protocol):
    name: str

    def check(self, video: Path) -> Verdict:
        """Look at a finished output video and say whether it is unsafe."""
        ...


class NoChecker:
    """The default: checks nothing and says so."""

    name = "none"

    def check(self, video: Path) -> Verdict:
        return NOT_CHECKED


def load_checker(spec: str | None) -> SafetyChecker:
    """``module:factory`` -> the checker it makes; empty -> NoChecker."""
    if not spec:
        return NoChecker()
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr or "checker")
    except (ImportError, AttributeError) as exc:
        raise InvalidRequest(f"safety_checker: cannot load {spec!r} ({exc}); give 'module:factory'") from None
    checker = factory()
    if not isinstance(checker, SafetyChecker):
        raise InvalidRequest(f"safety_checker: {spec!r} did not make a SafetyChecker (name + check(video))")
    return checker
