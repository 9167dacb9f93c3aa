"""A task's cancel token: tripped by its caller, by the clock past its deadline, or by its process stopping; it
says which (``ended``), so the runner knows whether to record a cancel, fail the task, or queue it again."""

from __future__ import annotations

import enum
import time

from infinitetalk.engines.base import CancelToken


class Ending(enum.Enum):
    """Why a task's render stopped short."""

    #: the caller canceled it: the task ends canceled, keeping the chunks made so far
    CANCELED = "canceled"
    #: it ran past the server's task timeout: the task fails, refunded
    TIMED_OUT = "timed_out"
    #: this process is shutting down: the task goes back to the queue for another run
    STOPPING = "stopping"


class DeadlineToken(CancelToken):
    """Canceled by a caller (``cancel``), by the process stopping (``stop``), or by the clock after ``timeout_s``."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._deadline = time.monotonic() + timeout_s
        self._ending: Ending | None = None

    def cancel(self) -> None:
        self._trip(Ending.CANCELED)

    def stop(self) -> None:
        self._trip(Ending.STOPPING)

    @property
    def ended(self) -> Ending | None:
        """Why the token tripped, None while it has not. A cancel or the deadline, whichever came first; but a stop
        overrides both: the process ends under the task, whose end was not recorded yet, so it runs again."""
        self.canceled  # noqa: B018 - a deadline passed trips the token when it is looked at
        return self._ending

    @property
    def timed_out(self) -> bool:
        return self.ended is Ending.TIMED_OUT

    @property
    def stopping(self) -> bool:
        return self.ended is Ending.STOPPING

    @property
    def canceled(self) -> bool:
        if not self._event.is_set() and time.monotonic() > self._deadline:
            self._trip(Ending.TIMED_OUT)
        return self._event.is_set()

    def raise_if_canceled(self) -> None:
        if self.canceled:
            super().raise_if_canceled()

    def _trip(self, ending: Ending) -> None:
        if self._ending is None or ending is Ending.STOPPING:
            self._ending = ending
        self._event.set()
