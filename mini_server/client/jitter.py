"""A capped, phased reconnect schedule: a crowd comes back spread out, and soon.

Theory of operation
-------------------
Phoenix's default schedule (``protocol.reconnect_after``) gives every client the same
delays, so after a server restart the whole crowd reconnects in the same instant (1,000
clients after a 3 s outage: all in one 100 ms window, at 4.26 s).  "Full jitter" (a delay
drawn between 0 and the schedule's) spreads them, but it keeps the schedule's long steps:
the tenth attempt is drawn from 0-5 s, so the last clients come back up to five seconds
after the server did.

:class:`CappedJitter` does three things, one per phase of an outage:

* **the first try stays Phoenix's** (10 ms): most closes are one connection's trouble (a
  heartbeat timeout, a proxy dropping an idle link) while the server is fine, and those
  clients are back at once, as with the default;
* **then one random wait**, uniform between 0 and ``cap`` seconds: each client picks its
  own phase, drawn afresh at every outage (``tries`` starts again at 1 after an open);
* **then a try every ``cap`` seconds**, exactly: a fixed period keeps the phases where they
  were drawn, so the crowd's tries stay spread evenly over one period, and once the server
  is back every client's next try comes within ``cap`` seconds, whatever the outage's length.

Why a fixed period rather than a random draw at every step (the previous version of this
schedule drew each delay between 0.25 and 1 x Phoenix's step capped at 2 s): random steps
of different lengths pile the clients' tries up where the short steps end, so the crowd is
not even over a period.  In ``lab.herd.simulate_herd`` (1,000 clients, 3 s outage) the
fixed period with ``cap=2.5`` peaks at about 50-60 connects per 100 ms, the random steps at
about 90-110 with ``cap=2`` and 75-90 with ``cap=2.5``; an even spread would be 40.

It is an option: ``Socket(url, reconnect_after=capped_jitter())``; the default stays
Phoenix's.  One instance may serve many sockets (each call draws independently and the
schedule keeps no state between calls); pass ``seed`` for a reproducible figure.  The costs
are those of chapter 04's windowed jitter: an outage longer than the first try costs up to
``cap`` seconds instead of Phoenix's next step, and a long outage sees a try every ``cap``
seconds instead of every 5 s.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from mini_server import protocol

__all__ = ["CappedJitter", "capped_jitter"]

CAP = 2.5  # seconds: the period of the tries, and so the longest wait once the server is back
FAST_TRIES = 1  # Phoenix's first step(s) kept as they are, for a close the server did not cause


class CappedJitter:
    """``schedule``'s first ``fast_tries`` steps, one random phase in [0, cap], then ``cap``."""

    def __init__(self, schedule: Callable[[int], float] = protocol.reconnect_after, *,
                 cap: float = CAP, fast_tries: int = FAST_TRIES,
                 rng: random.Random | None = None) -> None:
        if not cap > 0:
            raise ValueError(f"cap is in seconds and must be > 0, got {cap!r}")
        if not isinstance(fast_tries, int) or fast_tries < 0:
            raise ValueError(f"fast_tries counts tries and must be an integer >= 0, "
                             f"got {fast_tries!r}")
        self.schedule, self.cap, self.fast_tries = schedule, float(cap), fast_tries
        self.rng = rng or random.Random()

    def __call__(self, tries: int) -> float:
        """The delay before attempt ``tries`` (1 for the first), in seconds."""
        if tries <= self.fast_tries:
            return min(self.schedule(tries), self.cap)
        if tries == self.fast_tries + 1:
            return self.rng.uniform(0.0, self.cap)  # this client's phase for this outage
        return self.cap

    def __repr__(self) -> str:
        name = getattr(self.schedule, "__name__", repr(self.schedule))
        return f"CappedJitter({name}, cap={self.cap:g}, fast_tries={self.fast_tries})"


def capped_jitter(schedule: Callable[[int], float] = protocol.reconnect_after, *,
                  cap: float = CAP, fast_tries: int = FAST_TRIES,
                  seed: int | None = None) -> CappedJitter:
    """Phoenix's first try, then a random phase and a try every ``cap`` s; seeded if ``seed``."""
    return CappedJitter(schedule, cap=cap, fast_tries=fast_tries, rng=random.Random(seed))
