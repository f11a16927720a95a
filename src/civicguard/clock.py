"""Clocks: the platform asks a clock for the time so that tests can drive it."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Something that tells the time as Unix seconds (UTC)."""

    def now(self) -> float:
        """Return the current time in Unix seconds."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        """Return the wall-clock time in Unix seconds."""
        return time.time()


class ManualClock:
    """A clock that moves only when told to; for tests.

    >>> clock = ManualClock(100.0)
    >>> clock.advance(2.5)
    >>> clock.now()
    102.5
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        """Return the clock's current time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self._now += seconds

    def set(self, when: float) -> None:
        """Jump to ``when``."""
        self._now = when
