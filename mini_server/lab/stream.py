"""Measure delivery: a stream of numbered messages, what arrived, outages, and the plot.

Theory of operation
-------------------
Chapter 05 counts what a client receives while the server keeps sending.  Three pieces:

* :class:`NumberedStream` calls ``send(n)`` for n = 1, 2, ... every ``interval`` seconds in
  one task it owns, and records when each was sent.  ``send`` is any coroutine: a plain
  ``Endpoint.broadcast`` (at most once) or ``history_channel.publish`` (stored, then sent).
* :class:`Receiver` binds to an event on a client channel and records when each number
  arrived (a number seen twice is counted as a duplicate, not twice).
* :class:`Outages` runs one outage at a time: ``await outages.run(label, cause, repair)``
  breaks something and waits until the channel has errored; with a ``repair`` it holds the
  outage for ``hold`` seconds and repairs it (None: the client comes back by itself, at
  once); then it waits until the channel is joined again.  The window from cause to rejoin
  is recorded; ``settle`` seconds of healthy streaming follow before ``run`` returns.

:func:`report` says, per outage, how many numbers were sent inside its window and how many
of those ever arrived; :func:`plot` draws sent and received over time with the windows shaded.
Times are the event loop's clock, shown relative to the stream's start.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mini_server.client import ChannelState

Action = Callable[[], Any] | None  # a function or coroutine function, or nothing to do


async def _call(action: Action) -> None:
    if action is not None:
        result = action()
        if inspect.isawaitable(result):
            await result


class NumberedStream:
    """Call ``send(n)`` for n = 1, 2, ... every ``interval`` seconds; record send times."""

    def __init__(self, send: Callable[[int], Awaitable[Any]], interval: float) -> None:
        self.send, self.interval = send, interval
        self.sent: list[tuple[float, int]] = []
        self.started_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> NumberedStream:
        """Start sending (idempotent)."""
        if self._task is None or self._task.done():
            self.started_at = asyncio.get_running_loop().time()
            self._task = asyncio.create_task(self._run(), name="numbered stream")
        return self

    async def stop(self) -> None:
        """Stop sending and wait for the task to end."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @property
    def count(self) -> int:
        """How many numbers were sent."""
        return len(self.sent)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        n = len(self.sent)
        while True:
            n += 1
            await self.send(n)
            self.sent.append((loop.time(), n))
            await asyncio.sleep(self.interval)  # the pacing is the point of a stream


class Receiver:
    """Record when each numbered message arrives on ``channel`` (``key`` reads the number)."""

    def __init__(
        self, channel: Any, event: str, key: Callable[[Any], int] = lambda payload: payload["n"]
    ) -> None:
        self.received: list[tuple[float, int]] = []
        self.duplicates = 0
        self._seen: set[int] = set()
        self._key, self._event = key, event
        self._loop = asyncio.get_running_loop()
        channel.on(event, self._on)

    def listen(self, channel: Any) -> int:
        """Also record ``event`` on another channel (a new channel object after a rejoin)."""
        return channel.on(self._event, self._on)

    def _on(self, payload: Any) -> None:
        n = self._key(payload)
        if n in self._seen:
            self.duplicates += 1
            return
        self._seen.add(n)
        self.received.append((self._loop.time(), n))

    def numbers(self) -> set[int]:
        """Every distinct number received."""
        return set(self._seen)


@dataclass
class Window:
    """One outage: from the cause to the channel joined again (loop times)."""

    label: str
    start: float
    end: float = 0.0


class Outages:
    """Cause an outage, wait for the channel to error and rejoin, record the window."""

    def __init__(
        self, channel: Any, *, hold: float, settle: float = 0.0, timeout: float = 15.0
    ) -> None:
        self.channel, self.hold, self.settle, self.timeout = channel, hold, settle, timeout
        self.windows: list[Window] = []

    async def run(self, label: str, cause: Action, repair: Action = None) -> Window:
        """Break, wait until errored, hold, repair, wait until joined again."""
        loop = asyncio.get_running_loop()
        # Wait for the transition, not the state: a fast outage may be over before we look.
        errored = asyncio.create_task(self.channel.wait_state(ChannelState.ERRORED, self.timeout))
        await asyncio.sleep(0)  # let the waiter register before anything breaks
        window = Window(label, loop.time())
        self.windows.append(window)
        try:
            await _call(cause)
            await errored
        finally:
            errored.cancel()
        if repair is not None:  # a client that comes back by itself is not held down
            await asyncio.sleep(self.hold)  # the outage lasts this long: that is the experiment
            await _call(repair)
        await self.channel.wait_joined(self.timeout)
        window.end = loop.time()
        await asyncio.sleep(self.settle)  # healthy time after it, so the plot shows recovery
        return window


    async def run_silent(self, label: str, cause: Action, repair: Action,
                         healed: Callable[[], Awaitable[bool]] | None = None) -> Window:
        """An outage no client notices (a partition): break, hold, repair, wait for ``healed``.

        The channel never errors, so nothing is awaited on it; ``healed`` (polled every
        50 ms, at most ``timeout`` s) says when the server side works again.
        """
        loop = asyncio.get_running_loop()
        window = Window(label, loop.time())
        self.windows.append(window)
        await _call(cause)
        await asyncio.sleep(self.hold)  # the partition lasts this long: that is the experiment
        await _call(repair)
        if healed is not None:
            async with asyncio.timeout(self.timeout):
                # Another process's state: there is no event to wait on, so poll it.
                while not await healed():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        window.end = loop.time()
        await asyncio.sleep(self.settle)
        return window


def report(stream: NumberedStream, receiver: Receiver, outages: Outages) -> list[dict[str, Any]]:
    """Per outage: numbers sent inside its window, how many of those arrived, how many lost."""
    got = receiver.numbers()
    rows = []
    for window in outages.windows:
        inside = [n for at, n in stream.sent if window.start <= at <= window.end]
        arrived = sum(n in got for n in inside)
        rows.append(
            {
                "outage": window.label,
                "seconds": round(window.end - window.start, 3),
                "sent": len(inside),
                "received": arrived,
                "lost": len(inside) - arrived,
            }
        )
    return rows


def report_text(rows: list[dict[str, Any]]) -> str:
    """The report as aligned text."""
    lines = [f"{'outage':16} {'seconds':>7} {'sent':>5} {'received':>8} {'lost':>5}"]
    lines += [
        f"{r['outage']:16} {r['seconds']:7.3f} {r['sent']:5} {r['received']:8} {r['lost']:5}"
        for r in rows
    ]
    return "\n".join(lines)


def plot(stream: NumberedStream, receiver: Receiver, outages: Outages, title: str) -> Any:
    """Cumulative sent and received over time, outage windows shaded; returns the Figure."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state in the kernel

    base = stream.started_at
    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    sent_t = [at - base for at, _ in stream.sent]
    recv_t = [at - base for at, _ in sorted(receiver.received)]
    ax.step(sent_t, range(1, len(sent_t) + 1), where="post", label="sent by the server")
    ax.step(recv_t, range(1, len(recv_t) + 1), where="post", label="received by the client")
    for window in outages.windows:
        ax.axvspan(window.start - base, window.end - base, color="tab:red", alpha=0.12)
        ax.annotate(
            window.label,
            (window.start - base, 0.98),
            xycoords=("data", "axes fraction"),
            fontsize=8,
            rotation=90,
            va="top",
            ha="right",
        )
    ax.set_xlabel("seconds since the stream started")
    ax.set_ylabel("messages (cumulative)")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8)
    fig.tight_layout()
    return fig


async def lose_reply(
    proxy: Any,
    arrived: Callable[[], bool],
    *,
    latency: float = 0.3,
    timeout: float = 10.0,  # noqa: ASYNC109 (bounds the wait inside with asyncio.timeout)
) -> None:
    """Make the next reply vanish: delay the link, wait until ``arrived()``, then drop it.

    With ``latency`` on the proxy, the server's reply is still inside the proxy when the
    server has already applied the push (``arrived()`` is true); dropping every connection
    then loses the reply but not the effect, exactly the case at-least-once must handle.
    The network is restored at once; the client reconnects on its own schedule.
    """
    proxy.latency(latency)
    try:
        async with asyncio.timeout(timeout):
            while not arrived():  # noqa: ASYNC110 (server-side state: nothing signals it)
                await asyncio.sleep(0.005)
        proxy.drop()
    finally:
        proxy.restore()
