"""EventLog: the awaitable record of client events that notebooks and tests wait on."""

from __future__ import annotations

import asyncio

import pytest

from mini_server.client import ClientEvent, EventLog


class FakeSocket:
    """Just enough of a Socket: on_event registration and a way to emit."""

    def __init__(self) -> None:
        self.subscribers = []

    def on_event(self, callback):
        self.subscribers.append(callback)

    def emit(self, kind: str, **data) -> None:
        event = ClientEvent(asyncio.get_running_loop().time(), "=", kind, kind, data)
        for callback in self.subscribers:
            callback(event)


async def test_wait_kind_returns_the_first_matching_event_after_since():
    """wait_kind skips events before ``since`` and waits for one that has not happened yet."""
    sock = FakeSocket()
    log = EventLog(sock)
    sock.emit("close", code=1000)
    since = len(log)
    waiter = asyncio.create_task(log.wait_kind("close", timeout=1, since=since))
    await asyncio.sleep(0)
    assert not waiter.done()
    sock.emit("open")
    sock.emit("close", code=1006)
    assert (await waiter).data == {"code": 1006}


async def test_one_log_follows_several_sockets_in_order():
    """Events of every watched socket land in one list, in the order they happened."""
    first, second = FakeSocket(), FakeSocket()
    log = EventLog(first)
    log.watch(second)
    first.emit("a")
    second.emit("b")
    assert [e.kind for e in log.events] == ["a", "b"]


async def test_until_checks_at_once_and_after_each_event():
    """until() returns at once for a true condition, else when an event makes it true."""
    sock = FakeSocket()
    log = EventLog(sock)
    await log.until(lambda: True, timeout=0.1)
    waiter = asyncio.create_task(log.until(lambda: len(log.of("open")) == 2, timeout=1))
    sock.emit("open")
    await asyncio.sleep(0)
    assert not waiter.done()
    sock.emit("open")
    await waiter


async def test_wait_times_out_when_nothing_matches():
    """A wait for an event that never comes raises TimeoutError after its timeout."""
    log = EventLog(FakeSocket())
    with pytest.raises(TimeoutError):
        await log.wait_kind("close", timeout=0.05)
