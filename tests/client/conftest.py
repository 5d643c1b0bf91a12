"""Client fixtures: a live demo Endpoint, sockets that are always disconnected, a TCP proxy.

Every socket made through ``sockets`` is disconnected and awaited at teardown (its transport
tasks finished); every endpoint is stopped; the proxy closes all its connections and tasks.
Teardown then checks that no task of the test is left pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from client_probes import BlackholeProxy

from mini_server.client import Socket
from mini_server.server import Endpoint

TIMEOUT = 3.0  # generous: the machine is shared


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_asyncio_errors():
    """Fail a test whose run made asyncio log an error (pending task destroyed, lost exception)."""
    handler = _Collect()
    logging.getLogger("asyncio").addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
    assert not handler.records, [r.getMessage() for r in handler.records]


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    """The demo Endpoint ("room:*") on 127.0.0.1 and a free port, stopped afterwards."""
    async with Endpoint() as server:  # aclose() on exit gives the port back
        yield server


@pytest.fixture
async def sockets() -> AsyncIterator[Callable[..., Socket]]:
    """Make client sockets (``cls=NaiveSocket`` for the naive one); all closed at teardown."""
    made: list[Socket] = []

    def make(url: str, cls: type[Socket] = Socket, **options: Any) -> Socket:
        sock = cls(url, **options)
        made.append(sock)
        return sock

    try:
        yield make
    finally:
        for sock in made:
            sock.disconnect()
        for sock in made:
            await sock.wait_closed(TIMEOUT)
        me = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()
                   and t.get_name().startswith("ws ")]
        assert not pending, f"client tasks left pending: {pending}"


@pytest.fixture
async def proxy(endpoint: Endpoint) -> AsyncIterator[BlackholeProxy]:
    """A BlackholeProxy in front of the demo endpoint."""
    p = await BlackholeProxy(endpoint.port).start()
    try:
        yield p
    finally:
        await p.close()
