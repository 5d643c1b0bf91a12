"""A retry timer whose delay is a function of how many times it has fired (phoenix.js timer.js).

Theory of operation
-------------------
``Timer(callback, timer_calc)`` holds a count, ``tries``, of how often ``callback`` has run.
``schedule_timeout()`` cancels any pending call and schedules ``callback`` after
``timer_calc(tries + 1)`` seconds; ``tries`` goes up by one just before the callback runs.
``reset()`` cancels the pending call and sets ``tries`` back to 0, so the next schedule starts
again from the first step of the back-off.  The socket's reconnect timer and every channel's
rejoin timer are Timers; their schedules are plain functions, so tests and teaching notebooks
pass their own instead of editing code.

Time comes from the running event loop (``loop.call_later`` / ``loop.time()``): a test that runs
the client on a virtual-time loop controls every delay exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Timer", "running_loop"]


def running_loop() -> asyncio.AbstractEventLoop:
    """The running asyncio loop, or a clear error when the client is used outside one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "the client needs a running asyncio event loop: call it from async code "
            "(a notebook cell with top-level await, or a coroutine run by asyncio.run)"
        ) from None


class Timer:
    """Calls ``callback`` after ``timer_calc(tries + 1)`` seconds; ``tries`` counts the calls."""

    def __init__(self, callback: Callable[[], object], timer_calc: Callable[[int], float]) -> None:
        self.callback = callback
        self.timer_calc = timer_calc
        self.tries = 0
        self._handle: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        """True while a call is scheduled."""
        return self._handle is not None

    @property
    def when(self) -> float | None:
        """Loop time of the scheduled call, or None."""
        return self._handle.when() if self._handle is not None else None

    def reset(self) -> None:
        """Cancel the pending call and start the back-off again from the first step."""
        self.tries = 0
        self.cancel()

    def cancel(self) -> None:
        """Cancel the pending call but keep ``tries`` (phoenix.js clearTimeout(timer.timer))."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def schedule_timeout(self) -> float:
        """Cancel any pending call and schedule the next one; return its delay in seconds."""
        self.cancel()
        delay = float(self.timer_calc(self.tries + 1))
        self._handle = running_loop().call_later(delay, self._fire)
        return delay

    def _fire(self) -> None:
        self._handle = None
        self.tries += 1
        self.callback()
