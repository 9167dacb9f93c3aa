"""A cancel token that also trips when the task runs past its deadline."""

from __future__ import annotations

import time

from infinitetalk.engines.base import CancelToken


class DeadlineToken(CancelToken):
    """Canceled by a caller, or by the clock after ``timeout_s``; ``timed_out`` says which."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._deadline = time.monotonic() + timeout_s
        self.timed_out = False
        #: Set when the process is shutting down: the task should go back to the queue, not end.
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True
        self.cancel()

    @property
    def canceled(self) -> bool:
        if not self._event.is_set() and time.monotonic() > self._deadline:
            self.timed_out = True
            self._event.set()
        return self._event.is_set()

    def raise_if_canceled(self) -> None:
        if self.canceled:
            super().raise_if_canceled()
