"""gc.freeze() after ramps of connections: when it freezes, unfreezes and collects."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from raw_client import TIMEOUT

from mini_server.server import Endpoint
from mini_server.server import gc_freeze as gc_freeze_module
from mini_server.server.gc_freeze import RampFreezer
from mini_server.testing import wait_until


class FakeGC:
    """Records what RampFreezer asks of the collector (the real one is process-wide)."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.frozen = 0

    def collect(self, generation: int = 2) -> int:
        self.calls.append(("collect", generation))
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")
        self.frozen += 1

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")
        self.frozen = 0

    def get_freeze_count(self) -> int:
        return self.frozen


@pytest.fixture
def fake_gc(monkeypatch: pytest.MonkeyPatch) -> FakeGC:
    fake = FakeGC()
    monkeypatch.setattr(gc_freeze_module, "gc", fake)
    return fake


async def settle(freezer: RampFreezer) -> None:
    await asyncio.sleep(freezer.settle * 3)


async def test_freezes_once_a_ramp_settles_not_once_per_connection(fake_gc):
    """A burst of 300 connections costs one freeze (after young garbage is collected)."""
    freezer = RampFreezer(settle=0.02, min_new=200)
    freezer.started()
    assert fake_gc.calls == [("collect", 1), "freeze"]
    for n in range(1, 301):
        freezer.changed(n)
    assert fake_gc.calls.count("freeze") == 1  # not yet: the ramp has not settled
    await settle(freezer)
    assert fake_gc.calls == [("collect", 1), "freeze", ("collect", 1), "freeze"]
    assert freezer.frozen_at == 300


async def test_fewer_than_min_new_connections_do_not_freeze_again(fake_gc):
    """Past the last freeze, fewer than min_new new connections are no ramp."""
    freezer = RampFreezer(settle=0.02, min_new=200)
    freezer.started()
    freezer.changed(1000)
    await settle(freezer)
    freezes = fake_gc.calls.count("freeze")
    freezer.changed(1199)
    await settle(freezer)
    assert fake_gc.calls.count("freeze") == freezes
    freezer.changed(1200)
    await settle(freezer)
    assert fake_gc.calls.count("freeze") == freezes + 1


async def test_a_long_ramp_freezes_each_time_it_grows_by_a_quarter(fake_gc):
    """Connections that never pause still get frozen, at +25 % steps, not at every check."""
    freezer = RampFreezer(settle=3600.0, min_new=10)  # never quiet: only growth counts
    freezer.started()
    frozen_at = []
    for count in range(10, 1010, 10):
        freezer.changed(count)
        freezer._check()  # what the timer does every ``settle`` seconds
        if fake_gc.calls.count("freeze") > len(frozen_at) + 1:
            frozen_at.append(freezer.frozen_at)
    freezer.stopped()
    assert frozen_at[:3] == [10, 20, 30]  # +10 (min_new) and +25 % both hold
    assert len(frozen_at) < 25
    assert all(b >= a * 1.25 for a, b in itertools.pairwise(frozen_at))


async def test_a_crowd_leaving_is_reclaimed_with_one_full_collection(fake_gc):
    """Below half of the frozen count: unfreeze, one full collection, freeze again."""
    freezer = RampFreezer(settle=0.02, min_new=10)
    freezer.started()
    freezer.changed(100)
    await settle(freezer)
    del fake_gc.calls[:]
    freezer.changed(60)
    await settle(freezer)
    assert fake_gc.calls == []
    freezer.changed(40)
    await settle(freezer)
    assert fake_gc.calls == ["unfreeze", ("collect", 2), "freeze"]
    assert freezer.frozen_at == 40


async def test_an_endpoint_with_gc_freeze_freezes_after_its_clients_join(fake_gc, make_server,
                                                                          raw):
    """Endpoint(gc_freeze=True) freezes on start and after a ramp; restart reclaims first."""
    server: Endpoint = await make_server(gc_freeze=True)
    assert fake_gc.calls == [("collect", 1), "freeze"]
    assert server.gc_freezer is not None
    server.gc_freezer.min_new, server.gc_freezer.settle = 3, 0.02
    clients = [await raw(endpoint=server) for _ in range(4)]
    for n, client in enumerate(clients):
        await client.join("echo:1", f"j{n}")
    await wait_until(lambda: fake_gc.calls.count("freeze") == 2, timeout=TIMEOUT)
    assert server.gc_freezer.frozen_at == 4
    await server.restart()
    assert fake_gc.calls[-3:] == ["unfreeze", ("collect", 2), "freeze"]


async def test_an_endpoint_without_gc_freeze_never_freezes(fake_gc, make_server, raw):
    """The default (an endpoint in a learner's kernel) leaves the collector alone."""
    server: Endpoint = await make_server()
    assert server.gc_freezer is None
    client = await raw(endpoint=server)
    await client.join("echo:1", "j")
    assert fake_gc.calls == []
