"""Finish async lab work from plain (non-async) code: the one place nest-asyncio2 is applied.

Theory of operation
-------------------
Notebooks use top-level ``await`` (``await server.kill()``), and that is the way to go.  A
few places cannot await: a plain ``def`` a learner writes, a sync callback, a grader helper.
:func:`run` finishes one awaitable from such code:

* no loop running in this thread -> a fresh loop (``asyncio.run``);
* inside a running loop (a Jupyter cell calling a sync function) -> the loop must run the
  awaitable *re-entrantly*, which asyncio forbids ("This event loop is already running").
  nest-asyncio2 (the maintained fork of nest-asyncio that ipykernel 7 itself relies on)
  patches the loop to allow it.  We apply it here only, lazily, on first use: patching is
  global to the loop, so it must not happen as a side effect of importing the course.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

_patched: set[int] = set()  # ids of loops already patched (apply once per loop)


def run(awaitable: Awaitable[T], timeout: float | None = 30.0) -> T:
    """Run ``awaitable`` to completion from sync code, in or out of a running loop."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await awaitable

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    if id(loop) not in _patched:
        import nest_asyncio2  # imported here: only sync conveniences need it

        nest_asyncio2.apply(loop)
        _patched.add(id(loop))
    return loop.run_until_complete(bounded())
