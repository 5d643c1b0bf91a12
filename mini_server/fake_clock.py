"""A fake clock for asyncio: an event loop whose time moves only when nothing else can run.

Theory of operation
-------------------
:class:`VirtualClockLoop` is a real asyncio selector loop with a virtual ``time()``.  When
nothing is ready to run, the loop would sleep in ``select(timeout)`` until its next timer;
here the selector polls without blocking and, finding nothing, moves the clock forward by
that timeout instead.  Every ``call_later``, ``asyncio.sleep`` and ``asyncio.timeout`` (a
channel's ``send_after``, a client's back-off, a test's "within 100 ms") therefore fires at
its exact time, in order, and a test of a one-second flush window finishes in microseconds.

This is what phoenix.js's tests get from fake timers and Elixir tests get from
``assert_receive`` timeouts that are short because nothing is slow: waiting is free and exact.

* :func:`run_virtual` runs a coroutine function on a fresh virtual loop (in this thread, which
  must not be running a loop already) and fails if it leaves tasks behind;
  :func:`mini_server.testing.run_with_fake_clock` does the same in a worker thread, with a
  real-time limit, for notebooks and graders;
* :func:`now` reads the clock and :func:`advance` moves it (every timer due fires, in order);
  both refuse to run on a real loop, where ``advance(60)`` would really wait a minute.

Real I/O still works (the selector is polled), but time jumps while a socket is waiting, so
use the fake clock for code without sockets: :mod:`mini_server.channel_test` in process.
A loop with nothing scheduled and nothing ready would wait forever: after ``HANG_GRACE``
real seconds (time for another thread's ``call_soon_threadsafe`` to arrive) it raises
instead of hanging the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["VirtualClockLoop", "advance", "now", "run_virtual"]

HANG_GRACE = 1.0  # real seconds an idle loop with no timer waits for another thread


class _VirtualSelector:
    """Wraps the real selector: never blocks on a timer, advances the loop's clock instead."""

    def __init__(self, real: Any, loop: VirtualClockLoop) -> None:
        self._real, self._loop = real, loop

    def select(self, timeout: float | None = None) -> list:
        events = self._real.select(0)
        if events:
            return events
        if timeout is None:  # no timer at all: only another thread can still wake us
            events = self._real.select(HANG_GRACE)
            if events:
                return events
            raise RuntimeError("fake clock: nothing is scheduled and nothing can happen; "
                               "the test would wait forever (an await without a timeout?)")
        self._loop.now += max(timeout, 0.0)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose time() is virtual and jumps to the next timer when idle."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self._selector = _VirtualSelector(self._selector, self)

    def time(self) -> float:
        return self.now


def _virtual_loop(what: str) -> VirtualClockLoop:
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualClockLoop):
        raise RuntimeError(f"{what} needs the fake clock: run this code with "
                           "fake_clock.run_virtual or testing.run_with_fake_clock")
    return loop


def now() -> float:
    """Seconds on the fake clock (0.0 when the loop started)."""
    return _virtual_loop("now()").now


async def advance(seconds: float) -> None:
    """Move the fake clock ``seconds`` forward, running every timer that falls due, in order."""
    _virtual_loop("advance()")
    await asyncio.sleep(seconds)


def run_virtual(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main()`` on a fresh VirtualClockLoop; fail if it leaves tasks behind."""
    loop = VirtualClockLoop()
    try:
        result = loop.run_until_complete(main())
        leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
        assert not leftover, f"tasks left pending: {leftover}"
        return result
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
