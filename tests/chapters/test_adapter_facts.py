"""Close codes that depend on Phoenix's HTTP adapter (issue 12 item 1): each test puts what a
chapter claims next to a scenario that shows the Bandit half of it on the bundled server.

Sources of the Cowboy half (stated in the text, not runnable here): ``cowboy_websocket.erl``
closes an idle connection with 1000 and echoes a client's close frame (without a code when it
had none); Bandit's ``connection.ex`` answers a client close with 1000 (no code, 1000, 1001,
3000-4999) and closes an idle one with 1002 (recorded in ../shared/fidelity as well); phoenix.js
<= 1.8.15 ``onConnClose`` schedules no reconnect after a 1000, and its ``visibilitychange``
listener reconnects after any close it did not ask for.
"""

from __future__ import annotations

import asyncio
import re

import nbformat
import pytest
from notebook_runner import CHAPTERS
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from mini_server.client import EventLog, Socket
from mini_server.server import Endpoint

TIMEOUT = 5.0


def text(name: str) -> str:
    """All markdown of a chapter, one string, whitespace folded (table rows stay rows)."""
    nb = nbformat.read(CHAPTERS / f"{name}.ipynb", as_version=4)
    cells = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return re.sub(r"[ \t]*\n(?!\|)[ \t]*", " ", cells)


def row(markdown: str, *cells: str) -> str:
    """The table row whose first column starts with cells[0] and that holds every cell."""
    for line in markdown.splitlines():
        first = line.strip("| ").split("|")[0].strip()
        if line.startswith("|") and first.startswith(cells[0]) and all(c in line for c in cells):
            return line
    raise AssertionError(f"no table row starting {cells[0]!r} with {cells[1:]}")


async def test_client_close_without_a_code_ch02_bandit_1000_cowboy_1005():
    """ch02 says Bandit answers a code-less client close with 1000 and Cowboy echoes it (1005);
    the bundled server answers a close frame without a code with 1000 and an empty reason, so
    the course's Socket reports 1000 after disconnect()."""
    ch02 = text("02_unreliable_connections")
    assert "1000" in row(ch02, "Bandit", "1005", "empty reason")
    assert "**1005**" in row(ch02, "Cowboy", "without a code")
    assert re.search(r"\*\*1000\*\* on Bandit .*\*\*1005\*\* on Cowboy", ch02)

    async with Endpoint(idle_timeout=30) as server:
        raw = await connect(f"{server.url}/websocket?vsn=2.0.0", close_timeout=TIMEOUT)
        await raw.close(None)  # code None: a close frame with an empty payload (no code)
        assert (raw.protocol.close_rcvd.code, raw.protocol.close_rcvd.reason) == (1000, "")

        sock = Socket(server.url)
        log = EventLog(sock)
        sock.connect()
        await sock.wait_open(timeout=TIMEOUT)
        sock.disconnect()  # a close frame without a code, as phoenix.js's disconnect()
        closed = await log.wait_kind("close", timeout=TIMEOUT)
        assert closed.data["code"] == 1000


async def test_idle_timeout_ch02_and_ch04_bandit_1002_cowboy_1000():
    """ch02 and ch04 say the idle timeout closes with 1002 on Bandit and 1000 on Cowboy; the
    bundled server closes a silent connection with 1002."""
    ch02, ch04 = text("02_unreliable_connections"), text("04_reconnecting_well")
    assert "**1002**" in row(ch02, "Bandit", "reconnects")
    assert "stays offline" in row(ch02, "Cowboy", "**1000**", "cowboy_websocket.erl")
    assert "1002" in row(ch04, "Bandit", "closed and back")
    assert "offline after the first close" in row(ch04, "Cowboy", "1000")
    assert re.search(r"Bandit closes an idle connection with 1002, Cowboy with 1000", ch04)

    async with Endpoint(idle_timeout=0.3) as server:
        silent = await connect(f"{server.url}/websocket?vsn=2.0.0")
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                await silent.recv()
        assert (silent.close_code, silent.close_reason) == (1002, "")


async def test_sleepy_client_ch04_is_closed_with_1002_and_comes_back_on_bandit():
    """ch04 says a client heartbeating slower than the idle timeout is closed over and over,
    with 1002 on Bandit, and comes back (1.8.16's rule, which our client follows); on Cowboy
    (1000) phoenix.js <= 1.8.15 would stay offline. Shown: two 1002 closes, two reconnects."""
    ch04 = text("04_reconnecting_well")
    assert re.search(r"phoenix\.js ≤ 1\.8\.15 never reconnects after a 1000", ch04)
    assert "stays offline after the first idle timeout" in ch04

    async with Endpoint(idle_timeout=0.3) as server:
        sleepy = Socket(server.url, heartbeat_interval=5.0,
                        reconnect_after=lambda tries: 0.01)
        log = EventLog(sleepy)
        sleepy.connect()
        try:
            await log.until(lambda: len(log.of("close")) >= 2
                            and sleepy.established_connections >= 3, timeout=TIMEOUT)
            assert [e.data["code"] for e in log.of("close")][:2] == [1002, 1002]
        finally:
            sleepy.disconnect()
            await sleepy.wait_closed(timeout=TIMEOUT)


def test_old_clients_are_not_offline_for_good_in_a_browser():
    """ch02 no longer says older clients stay "offline for good": a browser page that becomes
    visible again (visibilitychange) reconnects them after a close they did not ask for."""
    ch02 = text("02_unreliable_connections")
    assert "for good" not in ch02
    assert re.search(r"visible again \(the `visibilitychange` event\)", ch02)
    assert "until the page becomes visible again" in row(ch02, "1000 normal", "**Cowboy**")
