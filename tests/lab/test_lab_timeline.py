"""The timeline recorder: outages, measured downtime, and the chart it draws."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

from matplotlib.figure import Figure

from mini_server.lab.timeline import Timeline, joined_channels


class FakeSocket:
    """Just enough of a client Socket: channels with a state, and an event stream."""

    def __init__(self, states):
        self.channels = [SimpleNamespace(state=s) for s in states]
        self._subs = {}

    def on_event(self, cb):
        ref = len(self._subs) + 1
        self._subs[ref] = cb
        return ref

    def off_event(self, ref):
        self._subs.pop(ref, None)

    def set_all(self, state):
        for ch in self.channels:
            ch.state = state
        for cb in list(self._subs.values()):
            cb(None)


class FakeServer:
    def __init__(self):
        self.channels = 3

    async def state(self):
        return {"channel_count": self.channels, "socket_count": 1}


def test_joined_channels_counts_only_joined_across_sockets():
    """Joined channels are summed over sockets; errored and joining ones do not count."""
    socks = [FakeSocket(["joined", "errored"]), FakeSocket(["joined", "joining", "joined"])]
    assert joined_channels(socks) == 3


async def test_downtime_runs_from_outage_to_all_rejoined():
    """Downtime is measured from the outage mark to the sample where all channels are back."""
    sock = FakeSocket(["joined"] * 3)
    async with Timeline([sock], interval=0.01) as tl:
        outage = tl.outage("kill")
        assert outage.expected == 3
        sock.set_all("errored")
        sock.channels[0].state = "joined"
        tl._sample_client()
        sock.set_all("joined")
        downtime = await tl.wait_recovered(outage, timeout=1)
    assert outage.dipped_at is not None
    assert 0 <= downtime == outage.recovered - outage.start
    assert tl.measurements()[0]["downtime"] == downtime


async def test_outage_without_a_dip_has_no_downtime():
    """If the clients never lost a channel, no downtime is invented."""
    sock = FakeSocket(["joined"] * 2)
    async with Timeline([sock], interval=0.01) as tl:
        outage = tl.outage("latency")
        tl.restored(outage)
    assert outage.downtime is None and outage.cause_end is not None


async def test_server_counts_are_sampled_from_state():
    """Samples carry the server's channel and socket counts from its state()."""
    server = FakeServer()
    async with Timeline([FakeSocket(["joined"])], server, interval=0.01) as tl:
        server.channels = 0

        await tl.wait_until(lambda sample: sample.server_channels == 0, timeout=1)
    assert tl.samples[0].server_channels == 3 and tl.samples[0].server_sockets == 1


async def test_plot_returns_a_figure_and_the_measured_numbers():
    """plot() gives a matplotlib Figure plus the same numbers measurements() gives."""
    sock = FakeSocket(["joined"] * 3)
    async with Timeline([sock], FakeServer(), interval=0.01) as tl:
        outage = tl.outage("kill")
        sock.set_all("errored")
        tl.restored(outage)
        sock.set_all("joined")
        await tl.wait_recovered(outage, timeout=1)
    fig, numbers = tl.plot()
    assert isinstance(fig, Figure)
    assert numbers == tl.measurements() and numbers[0]["downtime"] is not None
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(f"down {numbers[0]['downtime']:.2f} s" in t for t in texts)


@contextlib.asynccontextmanager
async def client_in_three_rooms(name: str):
    """A fast-timer Socket joined to three rooms of a fresh in-kernel server; all closed after."""
    from mini_server.client import Socket
    from mini_server.lab import servers, timing

    server = await servers.start_server(name)
    sock = Socket(server.url, **timing.FAST.socket_options())
    try:
        sock.connect()
        await sock.wait_open(5)
        channels = [sock.channel(f"room:{i}") for i in range(3)]
        for ch in channels:
            ch.join()
        for ch in channels:
            await ch.wait_state("joined", 5)
        yield sock, server
    finally:
        sock.disconnect()
        await sock.wait_closed(5)
        await server.close()


async def test_measures_the_seed_scenario_against_a_real_server():
    """Kill + restart with a real client: downtime covers the outage and ends at rejoin."""
    async with client_in_three_rooms("timeline-seed") as (sock, server):
        async with Timeline([sock], server, interval=0.02) as tl:
            outage = tl.outage("kill")
            await server.kill()
            await tl.wait_until(lambda s: s.joined == 0 and s.server_channels == 0, timeout=2)
            await server.restart()
            tl.restored(outage)
            downtime = await tl.wait_recovered(outage, timeout=5)
            await tl.wait_until(lambda s: s.server_channels == 3, timeout=2)
        assert outage.cause_end <= outage.recovered
        assert downtime >= outage.cause_end - outage.start
        _, numbers = tl.plot()
        assert numbers[0]["downtime"] == downtime


async def test_a_restart_shorter_than_the_interval_still_dips_the_server_line():
    """An in-kernel server is read at every client event, so a quick deploy shows 0 channels."""
    async with client_in_three_rooms("timeline-deploy") as (sock, server):
        # An interval far longer than the test: only event-driven samples can see the dip.
        async with Timeline([sock], server, interval=60) as tl:
            outage = tl.outage("deploy")
            await server.restart()
            tl.restored(outage)
            await tl.wait_recovered(outage, timeout=5)
            await tl.wait_until(lambda s: s.server_channels == 3, timeout=5)
        during = [s.server_channels for s in tl.samples if s.t >= outage.start]
        assert 0 in during, f"server line never dipped: {during}"


async def test_the_three_parts_of_a_kill_add_up_to_the_downtime():
    """cause (kill -> restart) + reconnect (-> socket open) + rejoin (-> all joined)."""
    async with client_in_three_rooms("timeline-parts") as (sock, server):
        async with Timeline([sock], server, interval=0.02) as tl:
            outage = tl.outage("kill")
            await server.kill()
            await tl.wait_until(lambda s: s.joined == 0, timeout=2)
            await server.restart()
            tl.restored(outage)
            downtime = await tl.wait_recovered(outage, timeout=5)
    parts = dict((name, end - begin) for name, begin, end in outage.phases())
    assert list(parts) == ["cause", "reconnect", "rejoin"]
    assert outage.reopened is not None and outage.cause_end <= outage.reopened
    assert parts["cause"] == outage.cause_end - outage.start
    assert abs(sum(parts.values()) - downtime) < 1e-9
    assert all(value >= 0 for value in parts.values())
    assert tl.measurements()[0]["rejoin"] == parts["rejoin"]


async def test_a_dip_nobody_marked_becomes_an_unmarked_outage():
    """A panel click while recording: its dip is an outage labelled 'unmarked 1', not
    folded into the chapter's own outages."""
    sock = FakeSocket(["joined"] * 3)
    async with Timeline([sock], interval=0.01) as tl:
        marked = tl.outage("kill")
        sock.set_all("errored")
        sock.set_all("joined")
        await tl.wait_recovered(marked, timeout=1)
        sock.set_all("errored")  # nobody called tl.outage(): a click on the panel
        sock.set_all("joined")
    labels = [(o.label, o.marked) for o in tl.outages]
    assert labels == [("kill", True), ("unmarked 1", False)]
    assert tl.outages[1].downtime is not None
    assert marked.downtime is not None and marked.recovered <= tl.outages[1].start


async def test_labels_never_overlap_and_the_legend_is_outside_the_data():
    """Five outages close together: every label gets its own place, the legend none of the
    axes."""
    sock = FakeSocket(["joined"] * 3)
    async with Timeline([sock], FakeServer(), interval=0.01) as tl:
        for index in range(5):
            outage = tl.outage(f"outage number {index}")
            sock.set_all("errored")
            tl.restored(outage)
            sock.set_all("joined")
            await tl.wait_recovered(outage, timeout=1)
    fig, _ = tl.plot()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = [text.get_window_extent(renderer) for text in ax.texts]
    assert len(boxes) == 5
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    axes_box = ax.get_window_extent(renderer)
    # A label aligned to an edge sits on it: allow the float rounding of half a pixel.
    inside = axes_box.padded(0.5)
    assert all(inside.contains(box.x0, box.y1) and inside.contains(box.x1, box.y1)
               for box in boxes), f"a label left the plot: {axes_box.bounds} {boxes}"
    legend_box = fig.legends[0].get_window_extent(renderer)
    assert not legend_box.overlaps(axes_box), "the legend covers the data"
