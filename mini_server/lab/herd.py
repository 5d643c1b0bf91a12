"""A thundering herd in virtual time: many clients, one server restart, real reconnect schedules.

Theory of operation
-------------------
When a server dies, every client connected to it sees the close at the same moment.  Each
then waits ``reconnect_after(tries)`` before attempt number ``tries`` (phoenix.js's Timer:
the first attempt uses ``tries=1``, every failed attempt moves to the next step).  With the
default schedule the delays are the same numbers for everybody, so the whole crowd knocks
on the door at the same instants, again and again, and all at once when it opens.

:func:`simulate_herd` replays that without sockets or sleeps: for each client it walks the
schedule from the moment it noticed the outage, records every connection attempt, and stops
at the first attempt made once the server is back (``down_for`` seconds after the outage).
What hurts a server that comes back is the wave of successful reconnects (each one runs
``connect`` and then rejoins every channel), so :meth:`HerdResult.peak` counts those by
default; attempts refused while it was down are kept too.  Assumptions, kept deliberately
simple so the picture shows the schedule and nothing else: an attempt while the server is
down fails at once (connection refused), an attempt once it is back succeeds, and the
server is never too busy to answer.

:func:`full_jitter` turns any schedule into "full jitter" (a random delay between 0 and the
schedule's delay, the AWS Architecture Blog's name); the result plugs into the real client
as ``Socket(url, reconnect_after=full_jitter(protocol.reconnect_after))``.  Both take a seed
so a chapter draws the same figure on every run.

Full jitter lowers the peak but lengthens the tail: late in the schedule a client may draw
most of a 5 s step.  :func:`windowed_jitter` (a simulation of one schedule that gets both)
starts from what the server needs, a crowd spread over the time it takes to accept it
(:func:`accept_window`: clients / accepts per second), and does two things: it caps every
step at that window, so nobody waits longer than one window once the server is back, and it
adds one random wait of up to a window before the first try, so each client retries on its
own phase and the crowd arrives spread over the window.  The costs: a short blip costs up to
a window instead of 10 ms, a long outage sees a retry per window instead of every 5 s, and
the window must be sized for the crowd.
The client's ``capped_jitter`` (``mini_server/client/jitter.py``) is a real reconnect option
with the same aim: Phoenix's 10 ms first try kept, then one random phase and a try every
2.5 s, which stays even over the window however long the outage; ``simulate_herd`` runs
either.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Schedule = Callable[[int], float]

MAX_ATTEMPTS = 10_000  # per client: a schedule of zeros must not loop forever


class FullJitter:
    """``schedule`` with full jitter: each delay is uniform between 0 and the original."""

    def __init__(self, schedule: Schedule, rng: random.Random | None = None) -> None:
        self.schedule = schedule
        self.rng = rng or random.Random()

    def __call__(self, tries: int) -> float:
        """A random delay in [0, schedule(tries)] seconds."""
        return self.rng.uniform(0.0, self.schedule(tries))

    def __repr__(self) -> str:
        return f"FullJitter({getattr(self.schedule, '__name__', self.schedule)!r})"


def full_jitter(schedule: Schedule, seed: int | None = None) -> FullJitter:
    """Wrap ``schedule`` with full jitter (seeded for a reproducible figure)."""
    return FullJitter(schedule, random.Random(seed))


class WindowedJitter:
    """``schedule`` capped at ``window`` seconds, plus a random wait of up to ``window`` before
    the first try (a fresh draw at every outage, since ``tries`` restarts at 1)."""

    def __init__(self, schedule: Schedule, window: float,
                 rng: random.Random | None = None) -> None:
        if window <= 0:
            raise ValueError(f"window must be > 0 seconds, got {window!r}")
        self.schedule = schedule
        self.window = window
        self.rng = rng or random.Random()

    def __call__(self, tries: int) -> float:
        """Seconds before attempt ``tries``: min(schedule, window), + phase on the first."""
        delay = min(self.schedule(tries), self.window)
        return delay + self.rng.uniform(0.0, self.window) if tries == 1 else delay

    def __repr__(self) -> str:
        name = getattr(self.schedule, "__name__", self.schedule)
        return f"WindowedJitter({name!r}, window={self.window:g})"


def windowed_jitter(schedule: Schedule, window: float, seed: int | None = None) -> WindowedJitter:
    """Wrap ``schedule`` in windowed jitter over ``window`` seconds (seeded for a figure)."""
    return WindowedJitter(schedule, window, random.Random(seed))


def accept_window(clients: int, accepts_per_second: float) -> float:
    """Seconds a server that accepts ``accepts_per_second`` connects needs for ``clients``."""
    if clients < 1 or accepts_per_second <= 0:
        raise ValueError(f"need clients >= 1 and accepts_per_second > 0, got {clients!r} and "
                         f"{accepts_per_second!r}")
    return clients / accepts_per_second


@dataclass(frozen=True)
class HerdResult:
    """Every connection attempt and every reconnect, in seconds since the outage began."""

    attempts: tuple[float, ...]
    reconnected: tuple[float, ...]
    down_for: float

    def per_bucket(self, bucket: float = 0.1, until: float | None = None, *,
                   what: str = "reconnected") -> list[int]:
        """``what`` ("reconnected" or "attempts") counted per ``bucket`` seconds from 0."""
        if bucket <= 0:
            raise ValueError(f"bucket must be > 0 seconds, got {bucket}")
        if what not in ("reconnected", "attempts"):
            raise ValueError(f'what must be "reconnected" or "attempts", got {what!r}')
        times = self.reconnected if what == "reconnected" else self.attempts
        end = max(self.attempts, default=0.0) if until is None else until
        counts = [0] * (int(end / bucket) + 1)
        for t in times:
            index = int(t / bucket)
            if index < len(counts):
                counts[index] += 1
        return counts

    def peak(self, bucket: float = 0.1, *, what: str = "reconnected") -> int:
        """The most reconnects (or attempts) in any one bucket."""
        return max(self.per_bucket(bucket, what=what), default=0)

    @property
    def last_reconnect(self) -> float:
        """When the last client got back (seconds since the outage began)."""
        return max(self.reconnected, default=0.0)


def simulate_herd(clients: int, down_for: float,
                  reconnect_after: Schedule | Callable[[], Schedule], *,
                  per_client: bool = False, detect_spread: float = 0.0,
                  seed: int | None = 0) -> HerdResult:
    """Replay ``clients`` clients reconnecting to a server that is down for ``down_for`` s.

    ``reconnect_after`` is one schedule shared by all clients, or (``per_client=True``) a
    factory called once per client.  ``detect_spread`` spreads the moments clients notice
    the outage uniformly over that many seconds (0: all at once, as after a kill).
    """
    if not isinstance(clients, int) or clients < 1:
        raise ValueError(f"clients must be a positive integer, got {clients!r}")
    if down_for < 0 or detect_spread < 0:
        raise ValueError(f"down_for and detect_spread are seconds >= 0, got "
                         f"{down_for!r} and {detect_spread!r}")
    rng = random.Random(seed)
    attempts: list[float] = []
    reconnected: list[float] = []
    for _ in range(clients):
        schedule = reconnect_after() if per_client else reconnect_after
        t = rng.uniform(0.0, detect_spread) if detect_spread else 0.0
        for tries in range(1, MAX_ATTEMPTS + 1):
            delay = schedule(tries)
            if delay < 0:
                raise ValueError(f"schedule returned a negative delay {delay!r} for try {tries}")
            t += delay
            attempts.append(t)
            if t >= down_for:
                reconnected.append(t)
                break
        else:
            raise RuntimeError(f"a client made {MAX_ATTEMPTS} attempts without getting back: "
                               "does the schedule return zero delays?")
    return HerdResult(tuple(sorted(attempts)), tuple(sorted(reconnected)), down_for)


def plot_herds(runs: Sequence[tuple[str, HerdResult]], bucket: float = 0.1) -> Any:
    """One panel per (name, result): successful connects per ``bucket``, on one linear axis.

    The axis is linear and shared on purpose: the lesson is the height of the tallest bar
    (every client in the same 100 ms) next to the low one, which a log axis would flatten.
    Refused attempts are left out (cheap for a server; the chapter prints their counts).
    """
    from matplotlib.figure import Figure  # only when a picture is drawn

    if not runs:
        raise ValueError("nothing to plot: pass at least one (name, result)")
    until = max(max(result.attempts, default=0.0) for _, result in runs)
    fig = Figure(figsize=(9, 1.2 + 1.9 * len(runs)), layout="constrained")
    axes = fig.subplots(len(runs), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    for ax, (name, result) in zip(axes, runs, strict=True):
        counts = result.per_bucket(bucket, until)
        ax.bar([i * bucket for i in range(len(counts))], counts, width=bucket, align="edge",
               color="tab:red")
        ax.axvline(result.down_for, color="black", ls="--", lw=1)
        ax.set_ylabel(f"connects\nper {bucket * 1000:g} ms")
        ax.set_title(f"{name}: at most {result.peak(bucket)} connects in {bucket * 1000:g} ms, "
                     f"last client back at {result.last_reconnect:.1f} s", fontsize=10)
    axes[-1].set_xlabel("seconds since the server went down (dashed: it is back)")
    return fig
