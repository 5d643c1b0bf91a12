"""Fixtures for the lab kit: servers that always go away."""

from __future__ import annotations

import pytest

from mini_server.lab import servers


@pytest.fixture
async def kernel_server(request):
    handle = await servers.start_server(f"test-{request.node.name}")
    yield handle
    await handle.close()


@pytest.fixture
async def process_server(request):
    handle = await servers.start_process_server(f"test-{request.node.name}")
    yield handle
    await handle.close()
    await handle.kill()
