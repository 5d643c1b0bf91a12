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

Downtime has three parts, drawn as one stacked bar per outage: **cause** (start ->
``restored()``: the server was down, the network broken; without a ``restored()`` mark,
start -> the first dip: the time to notice), **reconnect** (-> the client's socket opened
again) and **rejoin** (-> every channel joined).  :meth:`Outage.phases` gives the numbers.

A dip nobody marked (a learner clicking Kill on a panel while the timeline records) becomes
an outage of its own, labelled ``unmarked 1``, ``unmarked 2``...: it starts at the dip, so
its cause part is empty, and it is drawn grey, so the chapter's own outages stay readable.
Labels are placed so they never overlap, and the legend sits outside the plot.

Every number a chapter prints comes from :meth:`Timeline.measurements` or the tuple
:meth:`Timeline.plot` returns, never from the text.  Times are seconds since ``start()``
on the event loop's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mini_server.lab.servers import read_state

if TYPE_CHECKING:  # matplotlib costs ~0.9 s to import: loaded when a plot is first drawn
    from matplotlib.figure import Figure

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
    reopened: float | None = None  # the first socket open after the dip
    marked: bool = True  # False: a dip nobody marked (a panel click while recording)

    @property
    def downtime(self) -> float | None:
        """Seconds from the outage to all channels rejoined (None if not recovered yet)."""
        return None if self.recovered is None else self.recovered - self.start

    def phases(self) -> list[tuple[str, float, float]]:
        """(part, from, to) for cause, reconnect and rejoin; empty until recovered."""
        if self.recovered is None:
            return []
        cause_end = self.cause_end if self.cause_end is not None else self.dipped_at
        cause_end = min(max(cause_end if cause_end is not None else self.start, self.start),
                        self.recovered)
        reopened = self.reopened if self.reopened is not None else cause_end
        reopened = min(max(reopened, cause_end), self.recovered)
        return [("cause", self.start, cause_end), ("reconnect", cause_end, reopened),
                ("rejoin", reopened, self.recovered)]

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for printing."""
        parts = {name: end - begin for name, begin, end in self.phases()}
        return {"label": self.label, "start": self.start, "expected": self.expected,
                "cause_end": self.cause_end, "detected": self.dipped_at,
                "reopened": self.reopened, "recovered": self.recovered,
                "downtime": self.downtime, "marked": self.marked, **parts}


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
            self._refs = [(s, s.on_event(self._on_event)) for s in self._clients]
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
    def _on_event(self, event: Any) -> None:
        if getattr(event, "kind", None) == "socket_state" and event.data.get("new") == "open":
            t = event.time - self._t0
            for outage in self.outages:  # the reconnect that ends each dip's wait
                if (outage.dipped_at is not None and outage.reopened is None
                        and outage.recovered is None and t >= outage.dipped_at):
                    outage.reopened = t
        self._sample_client()

    def _clients_now(self) -> Iterable[Any]:
        return self._clients() if callable(self._clients) else self._clients

    def _sample_client(self) -> None:
        snapshot = getattr(self.server, "snapshot", None)
        if callable(snapshot):  # in-kernel server: cheap and synchronous, read it now
            state = snapshot()
            self._server_counts = (state.get("channel_count"), state.get("socket_count"))
        channels, sockets = self._server_counts
        sample = Sample(self.now(), joined_channels(self._clients_now()), channels, sockets)
        previous = self.samples[-1] if self.samples else None
        self.samples.append(sample)
        open_outage = any(o.recovered is None for o in self.outages)
        if previous is not None and sample.joined < previous.joined and not open_outage:
            unmarked = sum(1 for o in self.outages if not o.marked) + 1
            self.outages.append(Outage(f"unmarked {unmarked}", sample.t, previous.joined,
                                       marked=False))
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
        """Draw joined channels, outage spans and the parts of each downtime; (figure, numbers)."""
        if ax is None:
            from matplotlib.figure import Figure  # only now: importing the module stays cheap

            fig = Figure(figsize=(10, 3.6), layout="constrained")
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
        bar_y, labelled = top + 0.35, set()
        labels = []
        for o in self.outages:
            end = o.cause_end if o.cause_end is not None else (o.recovered or o.start)
            color = "tab:red" if o.marked else "0.6"
            span_label = "outage" if o.marked else "unmarked dip (a click?)"
            ax.axvspan(o.start, max(end, o.start + 1e-3), color=color, alpha=0.15,
                       label=None if span_label in labelled else span_label)
            labelled.add(span_label)
            for part, begin, finish in o.phases():
                name = PHASE_NAMES[part]
                ax.barh(bar_y, max(finish - begin, 0.0), left=begin, height=0.22,
                        color=PHASE_COLORS[part] if o.marked else "0.6",
                        label=None if (name in labelled or not o.marked) else name)
                labelled.add(name)
            if o.downtime is not None:
                labels.append(((o.start + o.recovered) / 2,
                               f"{o.label}: down {o.downtime:.2f} s", color))
        ax.set_xlabel("seconds")
        ax.set_ylabel("channels")
        ax.set_title(title)
        fig.legend(loc="outside right upper", fontsize=8)  # never over the data
        # Room for every label on its own level first; shrinking the range afterwards only
        # spreads the levels apart, so labels that did not overlap never come to overlap.
        ax.set_ylim(-0.2, bar_y + 0.3 + LABEL_STEP * max(len(labels), 1))
        levels = _place_labels(fig, ax, labels, bar_y + 0.2)
        ax.set_ylim(-0.2, bar_y + 0.3 + LABEL_STEP * max(levels, default=1))
        return fig, self.measurements()


PHASE_NAMES = {"cause": "cause (down / broken)", "reconnect": "reconnect wait",
               "rejoin": "rejoin"}
PHASE_COLORS = {"cause": "tab:red", "reconnect": "tab:orange", "rejoin": "tab:blue"}
LABEL_STEP = 0.45  # channels (y units) between two levels of outage labels


def _place_labels(fig: Figure, ax: Any, labels: list[tuple[float, str, str]],
                  base: float) -> list[int]:
    """Put each (x, text, colour) at the lowest level where it overlaps no other label.

    Text widths are only known once drawn, so the figure is laid out first (the legend
    outside takes its width), then each label is drawn, measured and moved up a level while
    it collides.  Returns the level (1 = lowest) of each label.
    """
    if not labels:
        return []
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # only when drawing

    canvas = FigureCanvasAgg(fig) if type(fig.canvas).__name__ == "FigureCanvasBase" \
        else fig.canvas
    canvas.draw()  # runs the constrained layout: the axes get their final size
    renderer = canvas.get_renderer()
    placed, levels = [], []
    frame = ax.get_window_extent(renderer)
    left, right = ax.get_xlim()
    for x, text, color in labels:
        artist = ax.text(x, base, text, ha="center", va="bottom", fontsize=9, color=color)
        box = artist.get_window_extent(renderer)
        if box.x0 < frame.x0:  # near an edge: align to the edge instead of leaving the plot
            artist.set_x(left)
            artist.set_horizontalalignment("left")
        elif box.x1 > frame.x1:
            artist.set_x(right)
            artist.set_horizontalalignment("right")
        level = 1
        while True:
            artist.set_y(base + LABEL_STEP * (level - 1))
            box = artist.get_window_extent(renderer).expanded(1.04, 1.1)
            if not any(box.overlaps(other) for other in placed):
                break
            level += 1
        placed.append(box)
        levels.append(level)
    return levels
