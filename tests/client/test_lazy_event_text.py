"""The event stream formats a frame's text only when a log handler or a listener wants it."""

from __future__ import annotations

import logging
from unittest import mock

import pytest

from mini_server.client import Socket, events, lifecycle, socket
from mini_server.client.events import EventLog


@pytest.fixture
def counted(monkeypatch):
    """Count the calls of describe() (payload formatting + redaction) on both paths."""
    spy = mock.Mock(wraps=events.describe)
    monkeypatch.setattr(lifecycle, "describe", spy)
    monkeypatch.setattr(socket, "describe", spy)
    return spy


async def _ping_pong(endpoint, sockets, n: int, **options) -> Socket:
    sock = sockets(endpoint.url, **options)
    channel = sock.channel("room:1")
    sock.connect()
    await channel.join()
    for i in range(n):
        await channel.push("ping", {"body": "x" * 1000, "i": i})
    return sock


async def test_no_text_is_built_when_nothing_listens(endpoint, sockets, counted, caplog):
    """Frames sent and received with logging above DEBUG and no listener: describe() never runs."""
    caplog.set_level(logging.INFO, logger="mini_server.client")
    await _ping_pong(endpoint, sockets, 20)
    assert counted.call_count == 0


async def test_text_is_built_for_a_debug_log_handler(endpoint, sockets, counted, caplog):
    """With DEBUG enabled every frame is described once, and the log shows it."""
    caplog.set_level(logging.DEBUG, logger="mini_server.client")
    await _ping_pong(endpoint, sockets, 20)
    assert counted.call_count >= 40  # 20 pushes out, 20 replies in (plus join, heartbeats)
    assert any("room:1 ping" in r.getMessage() for r in caplog.records)


async def test_text_is_built_when_a_listener_reads_it_and_only_once(endpoint, sockets, counted,
                                                                   caplog):
    """A listener reading event.text gets the line; reading it twice formats it once."""
    caplog.set_level(logging.INFO, logger="mini_server.client")
    sock = sockets(endpoint.url)
    texts: list[str] = []
    sock.on_event(lambda e: texts.extend([e.text, e.text]) if e.kind == "received" else None)
    log = EventLog(sock)
    channel = sock.channel("room:1")
    sock.connect()
    await channel.join()
    await channel.push("ping", {"n": 1})
    received = [e for e in log.events if e.kind == "received"]
    assert counted.call_count == len(received) >= 2 and texts[0] == texts[1]
    assert any("room:1 phx_reply" in t and "'n': 1" in t for t in texts), texts
