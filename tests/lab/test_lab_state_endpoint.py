"""The OS-process server's /state answers this machine's tools, never a web page."""

from __future__ import annotations

import asyncio

import pytest

from mini_server.lab.process_server import refusal


@pytest.mark.parametrize("headers", [
    {}, {"host": "127.0.0.1"}, {"host": "127.0.0.1:8123"}, {"host": "localhost:8123"},
    {"host": "[::1]:8123"}, {"host": "LOCALHOST"},
    {"host": "127.0.0.1", "origin": "http://localhost:8888"},
    {"host": "127.0.0.1", "origin": "http://127.0.0.1:8888"},
])
def test_loopback_requests_without_a_foreign_origin_are_served(headers):
    """No Origin (the lab, curl) or a loopback page, and a loopback Host: allowed."""
    assert refusal(headers) is None


@pytest.mark.parametrize("headers", [
    {"host": "evil.example"}, {"host": "127.0.0.1.evil.example:8123"},
    {"host": "10.0.0.5:8123"},
    {"host": "127.0.0.1", "origin": "https://evil.example"},
    {"host": "127.0.0.1", "origin": "http://localhost.evil.example"},
    {"host": "127.0.0.1", "origin": "null"},
])
def test_a_foreign_host_or_origin_is_refused(headers):
    """DNS rebinding (a foreign Host) and a page on another site (Origin) are refused."""
    assert refusal(headers) is not None


async def _status(port: int, headers: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /state HTTP/1.0\r\n{headers}\r\n".encode())
        async with asyncio.timeout(5):
            response = await reader.read()
    finally:
        writer.close()
    return response.split(b"\r\n", 1)[0]


async def test_state_endpoint_answers_403_to_a_foreign_host_or_origin(process_server):
    """Over HTTP: 200 for the lab's own request, 403 for a rebinding Host or a foreign Origin."""
    port = process_server._state_port
    assert await _status(port, "Host: 127.0.0.1\r\n") == b"HTTP/1.0 200 OK"
    assert await _status(port, "Host: evil.example\r\n") == b"HTTP/1.0 403 Forbidden"
    assert await _status(port, "Host: 127.0.0.1\r\nOrigin: https://evil.example\r\n") == (
        b"HTTP/1.0 403 Forbidden")
    assert (await process_server.state())["running"]  # the lab's own client still reads it
