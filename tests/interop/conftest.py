"""Fixtures for running the official phoenix.js client against an in-process mini_server.

These tests never skip: without node or tests/js/node_modules they fail and say how to
install (`npm ci --prefix tests/js`), because the interop suite is the proof that
mini_server speaks Phoenix's protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from phoenix_js import PhoenixJS, missing_prerequisite

from mini_server.server import Endpoint


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    """A demo mini_server on 127.0.0.1 and an OS-chosen port, stopped afterwards."""
    async with Endpoint() as server:  # aclose() on exit gives the port back
        yield server


@pytest.fixture
async def restartable_endpoint() -> AsyncIterator[Endpoint]:
    """A demo mini_server on a free port; the Endpoint keeps the port while it is down."""
    async with Endpoint(port=0) as server:
        yield server


@pytest.fixture
async def js() -> AsyncIterator[PhoenixJS]:
    """A node process running phoenix.js 1.8.16 (fails, never skips, when not installed)."""
    problem = missing_prerequisite()
    if problem:
        pytest.fail(f"interop tests need phoenix.js under node: {problem}", pytrace=False)
    client = await PhoenixJS.start()
    try:
        yield client
    finally:
        await client.close()
