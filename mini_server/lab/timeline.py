"""Record channels joined over time, mark outages, measure downtime, draw the timeline.

Theory of operation
-------------------
A :class:`Timeline` samples two views of the same truth:

* **client**: how many channels are ``joined``, summed over one or many client sockets.
  It samples on every client event (``socket.on_event``) and on a short interval, so a dip
  of a few milliseconds is still seen at the time it happened.
* **server**: ``channel_count`` and ``socket_count`` from the server's snapshot (a server
  handle's ``state()`` or an Endpoint's ``snapshot()``), polled on the interval and, when
  the server lives in this kernel (a synchronous ``snapshot()``), read again at every client
  event, so a restart shorter than the interval still shows as a dip on the server line.

An :class:`Outage` is marked when a chapter breaks something (``timeline.outage("kill")``);
it expects as many joined channels as there were at that moment.  It *dips* at the first
sample below that number and is *recovered* at the first sample back at it after a dip.
**Downtime = recovered - start**: detection, reconnect and rejoin together.  An outage that
never dips has no downtime (the clients never noticed).  ``restored()`` marks when the cause
was removed (network restored, server restarted), drawn as the end of the shaded span.

Every number a chapter prints comes from :meth:`Timeline.measurements` or the tuple
:meth:`Timeline.plot` returns, never from the text.  Times are seconds since ``start()``
on the event loop's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from mini_server.lab.servers import read_state

logger = logging.getLogger(__name__)

Clients = Iterable[Any] | Callable[[], Iterable[Any]]


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation: seconds since start, joined channels, and the server's counts."""

    t: float
    joined: int
    server_channels: int | None = None
    server_sockets: int | None = None


@dataclass
class Outage:
    """Something broke at ``start``; downtime ends when every channel is joined again."""

    label: str
    start: float
    expected: int
    cause_end: float | None = None
    dipped_at: float | None = None
    recovered: float | None = None

    @property
    def downtime(self) -> float | None:
        """Seconds from the outage to all channels rejoined (None if not recovered yet)."""
        return None if self.recovered is None else self.recovered - self.start

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for printing."""
        return {"label": self.label, "start": self.start, "expected": self.expected,
                "cause_end": self.cause_end, "detected": self.dipped_at,
                "recovered": self.recovered, "downtime": self.downtime}


def joined_channels(sockets: Iterable[Any]) -> int:
    """How many channels of these client sockets are in the joined state."""
    return sum(1 for sock in sockets for ch in sock.channels
               if getattr(ch.state, "value", ch.state) == "joined")


class Timeline:
    """A recorder of joined channels (client and server view) with outage marks."""

    def __init__(self, clients: Clients = (), server: Any = None, *,
                 interval: float = 0.05) -> None:
        self._clients = clients if callable(clients) else list(clients)
        self.server = server
        self.interval = interval
        self.samples: list[Sample] = []
        self.outages: list[Outage] = []
        self._server_counts: tuple[int | None, int | None] = (None, None)
        self._t0: float | None = None
        self._task: asyncio.Task | None = None
        self._refs: list[tuple[Any, Any]] = []
        self._changed = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> Timeline:
        """Start sampling now (t = 0)."""
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._changed = asyncio.Event()
        if not callable(self._clients):
            self._refs = [(s, s.on_event(lambda _ev: self._sample_client()))
                          for s in self._clients]
        await self._poll_server()
        self._sample_client()
        self._task = asyncio.create_task(self._run(), name="timeline sampler")
        return self

    async def stop(self) -> None:
        """Stop sampling; the recording stays available for plotting."""
        for sock, ref in self._refs:
            sock.off_event(ref)
        self._refs = []
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def __aenter__(self) -> Timeline:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- marks ------------------------------------------------------------------------
    def now(self) -> float:
        """Seconds since start()."""
        if self._t0 is None:
            raise RuntimeError("the timeline is not started: await timeline.start() first")
        return asyncio.get_running_loop().time() - self._t0

    def outage(self, label: str, expected: int | None = None) -> Outage:
        """Mark an outage starting now; ``expected`` defaults to the channels joined now."""
        self._sample_client()
        count = self.samples[-1].joined if expected is None else expected
        outage = Outage(label, self.now(), count)
        self.outages.append(outage)
        return outage

    def restored(self, outage: Outage | None = None) -> None:
        """Mark that the cause of ``outage`` (default: the latest) was removed now."""
        target = outage or (self.outages[-1] if self.outages else None)
        if target is None:
            raise RuntimeError("restored() without an outage: call timeline.outage(...) first")
        target.cause_end = self.now()

    async def wait_until(self, predicate: Callable[[Sample], bool],
                         timeout: float = 10.0) -> Sample:  # noqa: ASYNC109 (house API)
        """Wait for a sample satisfying ``predicate`` (the latest one counts too)."""

        async def satisfied() -> Sample:
            while not (self.samples and predicate(self.samples[-1])):
                self._changed.clear()
                await self._changed.wait()
            return self.samples[-1]

        async with asyncio.timeout(timeout):
            return await satisfied()

    async def wait_recovered(self, outage: Outage | None = None,
                             timeout: float = 10.0) -> float:  # noqa: ASYNC109 (house API)
        """Wait until every channel is joined again; returns the measured downtime."""
        target = outage or self.outages[-1]
        await self.wait_until(lambda _s: target.recovered is not None, timeout)
        return target.downtime

    def measurements(self) -> list[dict[str, Any]]:
        """Every outage as plain numbers (seconds since start)."""
        return [o.as_dict() for o in self.outages]

    # --- sampling -------------------------------------------------------------------
    def _clients_now(self) -> Iterable[Any]:
        return self._clients() if callable(self._clients) else self._clients

    def _sample_client(self) -> None:
        snapshot = getattr(self.server, "snapshot", None)
        if callable(snapshot):  # in-kernel server: cheap and synchronous, read it now
            state = snapshot()
            self._server_counts = (state.get("channel_count"), state.get("socket_count"))
        channels, sockets = self._server_counts
        sample = Sample(self.now(), joined_channels(self._clients_now()), channels, sockets)
        self.samples.append(sample)
        for outage in self.outages:
            if outage.recovered is not None or sample.t < outage.start:
                continue
            if sample.joined < outage.expected and outage.dipped_at is None:
                outage.dipped_at = sample.t
            elif sample.joined >= outage.expected and outage.dipped_at is not None:
                outage.recovered = sample.t
        self._changed.set()

    async def _poll_server(self) -> None:
        if self.server is None:
            return
        state = await read_state(self.server)
        self._server_counts = (state.get("channel_count"), state.get("socket_count"))

    async def _run(self) -> None:
        while True:
            try:
                await self._poll_server()
            except Exception as exc:  # the server is a moving part: record the gap, go on
                logger.warning("! timeline: server state unavailable: %r", exc)
                self._server_counts = (None, None)
            self._sample_client()
            await asyncio.sleep(self.interval)  # the sampling period, not synchronisation

    # --- drawing --------------------------------------------------------------------
    def plot(self, title: str = "channels joined over time",
             ax: Any = None) -> tuple[Figure, list[dict[str, Any]]]:
        """Draw joined channels, outage spans and measured downtimes; (figure, numbers)."""
        if ax is None:
            fig = Figure(figsize=(9, 3.2), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        ts = [s.t for s in self.samples]
        ax.step(ts, [s.joined for s in self.samples], where="post", lw=2,
                label="client: channels joined")
        server = [(s.t, s.server_channels) for s in self.samples if s.server_channels is not None]
        if server:
            ax.step(*zip(*server, strict=True), where="post", ls="--", lw=1.2,
                    label="server: channels")
        top = max([s.joined for s in self.samples] + [c for _, c in server] + [1])
        for i, o in enumerate(self.outages):
            end = o.cause_end if o.cause_end is not None else (o.recovered or o.start)
            ax.axvspan(o.start, max(end, o.start + 1e-3), color="tab:red", alpha=0.15,
                       label="outage" if i == 0 else None)
            if o.downtime is not None:
                y = top + 0.35
                ax.annotate("", xy=(o.recovered, y), xytext=(o.start, y),
                            arrowprops={"arrowstyle": "<->", "color": "tab:red"})
                ax.text((o.start + o.recovered) / 2, y + 0.1,
                        f"{o.label}: down {o.downtime:.2f} s", ha="center", va="bottom",
                        fontsize=9, color="tab:red")
        ax.set_ylim(-0.2, top + 1.2)
        ax.set_xlabel("seconds")
        ax.set_ylabel("channels")
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize=8)
        return fig, self.measurements()
