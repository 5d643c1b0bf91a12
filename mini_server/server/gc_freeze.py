"""Keep full garbage collections short in a server holding many sockets: freeze after ramps.

Theory of operation
-------------------
CPython's full (generation 2) collection walks every container object the collector
tracks.  A server with 10 000 joined sockets holds about a million of them (connections,
tasks, channels, websockets' buffers), and a full collection of that many took 1.7-2.2 s on
the course's machine; CPython starts one whenever the objects that survived younger
collections since the last full one exceed a quarter of the long-lived ones, which a stream
of broadcasts reached about once in five broadcasts.  A broadcast that meets one waits.

``gc.freeze()`` moves every object alive now into a permanent generation that collections
skip.  What a server holds for its connected sockets is exactly that kind of object: alive
until the socket goes.  :class:`RampFreezer` freezes once when the server starts serving and
again after each ramp of connections: once ``min_new`` more have come since the last
freeze and none for ``settle`` seconds, or, while a long ramp goes on, each time the count
has grown by a quarter (checked every ``settle`` seconds, so a burst of joins costs one
freeze, not one per join).  Collections then walk only what is new since.

The price, and its bound: cyclic garbage among frozen objects is never collected.  When
the count falls below half of what it was at the last freeze (a crowd left), the next
check unfreezes, runs one full collection, which reclaims what the departed sockets left
(one pause, for the ones that stayed), and freezes again, so at most about half of what
was frozen can be held by sockets that are gone.

``gc.freeze()`` is process-wide, so this is opt-in (``Endpoint(gc_freeze=True)``): the CLI
and the lab's process server turn it on (they are a server and nothing else); an endpoint
in a learner's kernel leaves it off, where it would freeze the notebook's own objects too.
"""

from __future__ import annotations

import asyncio
import gc

from mini_server.server.log_lines import server_logger

log = server_logger(__name__)


class RampFreezer:
    """Calls ``gc.freeze()`` when serving starts and after each ramp of connections."""

    def __init__(self, *, settle: float = 0.5, min_new: int = 200, grow: float = 0.25) -> None:
        self.settle, self.min_new, self.grow = settle, min_new, grow
        self.count = 0  # connections now
        self.frozen_at = 0  # connections at the last freeze
        self.freezes = 0
        self._last_change = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def started(self) -> None:
        """Serving begins: freeze what start-up left (imports, routes, the listener).

        After a restart, what the previous sockets left is reclaimed first (one full
        collection while nobody is connected yet).
        """
        full = self.frozen_at > 0
        if full:
            gc.unfreeze()
        self.count = 0
        self._freeze(full=full)

    def changed(self, count: int) -> None:
        """The number of connections is now ``count``."""
        self.count = count
        loop = asyncio.get_running_loop()
        self._last_change = loop.time()
        if self._timer is None and (self._grown() >= self.min_new or self._left()):
            self._timer = loop.call_later(self.settle, self._check)

    def stopped(self) -> None:
        """Serving ended: no more checks."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _grown(self) -> int:
        return self.count - self.frozen_at

    def _left(self) -> bool:
        return self.count < self.frozen_at // 2

    def _check(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self._last_change >= self.settle
        if self._left():
            gc.unfreeze()  # a crowd left: reclaim what it held, once, then freeze again
            self._freeze(full=True)
        elif self._grown() >= self.min_new:
            if quiet or self._grown() >= self.frozen_at * self.grow:
                self._freeze()
            else:
                self._timer = loop.call_later(self.settle, self._check)

    def _freeze(self, *, full: bool = False) -> None:
        # Garbage first, so it is not frozen too: only the young generations (cheap) unless
        # a crowd has left, when the old generation holds its garbage.
        gc.collect(2 if full else 1)
        gc.freeze()
        self.frozen_at = self.count
        self.freezes += 1
        log.debug("= gc: froze %d objects at %d connections", gc.get_freeze_count(),
                  self.count)
