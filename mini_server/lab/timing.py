"""Teaching timers: Phoenix's schedules, shrunk so a demo takes seconds, in one place.

Theory of operation
-------------------
Phoenix's real defaults (heartbeat every 30 s, push timeout 10 s, server idle timeout 60 s,
rejoin after 1, 2, 5 then 10 s) would make a live demo a coffee break.  Chapters therefore
run on *teaching timers*: the same shapes, shorter numbers.  Continuous integration runs the
notebooks with ``COURSE_FAST=1`` and gets shorter numbers still.

Rules:

* Phoenix's numbers are never restated here: :data:`PHOENIX` is built from
  :mod:`mini_server.protocol`, so the table a chapter prints cannot drift from the truth.
* The reconnect and rejoin schedules keep Phoenix's *shape* (the same steps, scaled),
  so what a learner sees on the timeline is Phoenix's schedule, only faster.
* Every value is read when :func:`timers` is called, so a test may set ``COURSE_FAST``
  before asking.  Nothing here starts a clock; these are only numbers and functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mini_server import protocol

FAST_ENV = "COURSE_FAST"

Schedule = Callable[[int], float]


@dataclass(frozen=True)
class ScaledSchedule:
    """A Phoenix back-off schedule multiplied by a constant factor (picklable, printable)."""

    base: Schedule
    factor: float

    def __call__(self, tries: int) -> float:
        """Seconds before attempt number ``tries`` (1-based)."""
        return self.base(tries) * self.factor

    def steps(self, count: int = 10) -> list[float]:
        """The first ``count`` delays, for printing next to Phoenix's."""
        return [round(self(n), 4) for n in range(1, count + 1)]


@dataclass(frozen=True)
class Timers:
    """One coherent set of timers for the client (Socket) and the server (Endpoint)."""

    name: str
    heartbeat_interval: float  # seconds between client heartbeats; timeout is the same again
    timeout: float  # push, join and leave timeout
    idle_timeout: float  # the server closes a connection silent this long
    reconnect_after: Schedule = field(repr=False)
    rejoin_after: Schedule = field(repr=False)

    def socket_options(self) -> dict[str, Any]:
        """Keyword arguments for ``mini_server.client.Socket``."""
        return {
            "heartbeat_interval": self.heartbeat_interval,
            "timeout": self.timeout,
            "reconnect_after": self.reconnect_after,
            "rejoin_after": self.rejoin_after,
        }

    def endpoint_options(self) -> dict[str, Any]:
        """Keyword arguments for ``mini_server.server.Endpoint``."""
        return {"idle_timeout": self.idle_timeout}

    @property
    def heartbeat_detection(self) -> float:
        """Worst case for noticing a dead link: one interval to send, one to give up."""
        return 2 * self.heartbeat_interval


PHOENIX = Timers(
    name="Phoenix 1.8 / phoenix.js 1.8.16 defaults",
    heartbeat_interval=protocol.DEFAULT_HEARTBEAT_INTERVAL,
    timeout=protocol.DEFAULT_TIMEOUT,
    idle_timeout=protocol.SERVER_IDLE_TIMEOUT,
    reconnect_after=protocol.reconnect_after,
    rejoin_after=protocol.rejoin_after,
)

# Phoenix's reconnect steps (10 ms ... 5 s) already fit a demo; rejoins (1 s ... 10 s) are halved.
TEACHING = Timers(
    name="teaching timers",
    heartbeat_interval=2.0,
    timeout=4.0,
    idle_timeout=6.0,
    reconnect_after=ScaledSchedule(protocol.reconnect_after, 1.0),
    rejoin_after=ScaledSchedule(protocol.rejoin_after, 0.5),
)

# CI: every notebook must run headless within 30 s, so everything shrinks again.
FAST = Timers(
    name="fast mode (COURSE_FAST=1)",
    heartbeat_interval=0.5,
    timeout=1.0,
    idle_timeout=1.5,
    reconnect_after=ScaledSchedule(protocol.reconnect_after, 0.2),
    rejoin_after=ScaledSchedule(protocol.rejoin_after, 0.1),
)


def fast_mode() -> bool:
    """True when the environment asks for fast mode (COURSE_FAST=1, true or yes)."""
    return os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes"}


def timers(fast: bool | None = None) -> Timers:
    """The timers a chapter should use now: FAST in fast mode, else TEACHING."""
    return FAST if (fast_mode() if fast is None else fast) else TEACHING


def _steps(schedule: Schedule, count: int) -> str:
    return ", ".join(f"{schedule(n):g}" for n in range(1, count + 1)) + ", ..."


def comparison(fast: bool | None = None) -> list[tuple[str, str, str]]:
    """Rows (what, Phoenix default, ours) for the table chapter 00 prints, in seconds."""
    ours = timers(fast)
    return [
        ("heartbeat interval", f"{PHOENIX.heartbeat_interval:g}", f"{ours.heartbeat_interval:g}"),
        ("push / join timeout", f"{PHOENIX.timeout:g}", f"{ours.timeout:g}"),
        ("server idle timeout", f"{PHOENIX.idle_timeout:g}", f"{ours.idle_timeout:g}"),
        ("reconnect after", _steps(PHOENIX.reconnect_after, 10), _steps(ours.reconnect_after, 10)),
        ("rejoin after", _steps(PHOENIX.rejoin_after, 4), _steps(ours.rejoin_after, 4)),
    ]


TEXT_WIDTH = 78  # a notebook output this wide never wraps, even beside the file browser


def comparison_text(fast: bool | None = None) -> str:
    """The comparison as aligned plain text (seconds), no line wider than ``TEXT_WIDTH``.

    Short values sit in two columns; a row whose values do not fit (the schedules) is
    written as a small block, one line per side, so nothing wraps in a narrow notebook.
    """
    name = timers(fast).name
    rows = comparison(fast)
    label_w = max(len(label) for label, _, _ in rows)
    short = [row for row in rows if max(len(row[1]), len(row[2])) <= 12]
    value_w = max([len("Phoenix"), *(len(row[1]) for row in short)])
    lines = [f"{'(seconds)'.ljust(label_w)}  {'Phoenix'.ljust(value_w)}  {name}"]
    for label, phoenix, ours in rows:
        if (label, phoenix, ours) in short:
            lines.append(f"{label.ljust(label_w)}  {phoenix.ljust(value_w)}  {ours}".rstrip())
        else:
            side_w = max(len("Phoenix"), len(name))
            lines.append(label)
            for side, values in (("Phoenix", phoenix), (name, ours)):
                line = f"  {side.ljust(side_w)}  {values}"
                lines.extend([line] if len(line) <= TEXT_WIDTH else [f"  {side}", f"    {values}"])
    return "\n".join(lines)
