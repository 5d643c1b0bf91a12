"""A capped, jittered reconnect schedule: a crowd comes back spread out, and soon.

Theory of operation
-------------------
Phoenix's default schedule (``protocol.reconnect_after``) gives every client the same
delays, so after a server restart the whole crowd reconnects in the same instant (1,000
clients after a 3 s outage: all in one 100 ms window, at 4.26 s).  "Full jitter" (a delay
drawn between 0 and the schedule's) spreads them, but it keeps the schedule's long steps:
the tenth attempt is drawn from 0-5 s, so the last clients come back up to five seconds
after the server did.

:class:`CappedJitter` caps each step at ``cap`` seconds and draws the delay uniformly
between ``low`` x and 1 x the capped step.  Two properties follow:

* **back soon**: every delay is at most ``cap``, so once the server is back each client's
  next attempt comes within ``cap`` seconds, whatever the outage's length (default 2 s);
* **spread out**: the random parts add up attempt after attempt, so by the time a
  restarted server answers, the clients' attempts are scattered over about ``cap``
  seconds instead of stacked in one instant (1,000 clients, 3 s outage, in
  ``lab.herd.simulate_herd``: at most about 100 per 100 ms against 1,000, all back within
  2 s of the return).  ``low`` > 0 keeps a floor under each delay, so a client does not
  hammer a dead server with near-zero retries.

It is an option: ``Socket(url, reconnect_after=capped_jitter())``; the default stays
Phoenix's.  One instance may serve many sockets (the draws are independent); pass
``seed`` for a reproducible figure.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from mini_server import protocol

__all__ = ["CappedJitter", "capped_jitter"]

CAP = 2.0  # seconds: the longest delay, and so how long after a return the last one waits
LOW = 0.25  # the shortest draw, as a fraction of the capped step


class CappedJitter:
    """``schedule`` capped at ``cap`` s, each delay uniform in [low x step, step]."""

    def __init__(self, schedule: Callable[[int], float] = protocol.reconnect_after, *,
                 cap: float = CAP, low: float = LOW, rng: random.Random | None = None) -> None:
        if not cap > 0:
            raise ValueError(f"cap is in seconds and must be > 0, got {cap!r}")
        if not 0.0 <= low <= 1.0:
            raise ValueError(f"low is a fraction of the step, between 0 and 1, got {low!r}")
        self.schedule, self.cap, self.low = schedule, float(cap), float(low)
        self.rng = rng or random.Random()

    def __call__(self, tries: int) -> float:
        """The delay before attempt ``tries`` (1 for the first), in seconds."""
        step = min(self.schedule(tries), self.cap)
        return self.rng.uniform(self.low * step, step)

    def __repr__(self) -> str:
        name = getattr(self.schedule, "__name__", repr(self.schedule))
        return f"CappedJitter({name}, cap={self.cap:g}, low={self.low:g})"


def capped_jitter(schedule: Callable[[int], float] = protocol.reconnect_after, *,
                  cap: float = CAP, low: float = LOW, seed: int | None = None) -> CappedJitter:
    """Phoenix's schedule (or ``schedule``) capped and jittered; seeded when ``seed`` is given."""
    return CappedJitter(schedule, cap=cap, low=low, rng=random.Random(seed))
