"""A safety checker for tests: it flags every output (loaded by the server as ``flag_all_checker:make``)."""

from __future__ import annotations

from pathlib import Path

from infinitetalk.tasks.safety import Verdict


class FlagAll:
    name = "flag-all"

    def check(self, video: Path) -> Verdict:
        assert video.is_file() and video.stat().st_size > 0  # it is shown the real output
        return Verdict(nsfw=True, reason="flagged by the test checker")


def make() -> FlagAll:
    return FlagAll()
