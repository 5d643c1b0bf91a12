"""A lean load generator for bench/herd.py: many Phoenix clients that only reconnect.

Why it exists: a real client (ours or phoenix.js) spends about 0.25 ms of CPU on every
refused attempt, so a few hundred of them in one process drift apart during a reconnect
schedule's quick first retries, and the herd a two-core machine makes with them peaks at
a third to a half of what the same schedule does across 1,000 devices.  This generator
keeps only what a herd is made of: per client one task that, once its connection drops,
tries a TCP connect at each time the schedule names (counted from the close; a refused
connect costs a syscall), and on success does the WebSocket handshake and a
``phx_join`` on that socket: real frames to the real server, through websockets'
sans-I/O protocol.  No heartbeat, no channel state, no event stream.

    python bench/herd_load.py URL COUNT SCHEDULE SEED
prints ``ready`` once every client has joined, then ``open T_ATTEMPT T_OPEN`` (seconds of
``time.monotonic()``) for every reconnect; closing stdin ends it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

RAMP_AT_ONCE = 50  # initial connects in flight: a gentle ramp, not part of the herd
HANDSHAKE_TIMEOUT = 30.0  # seconds; a loaded server may be slow, never silent
JOIN = json.dumps(["1", "1", "room:herd", "phx_join", {}]).encode()


async def open_and_join(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                        uri: str) -> None:
    """WebSocket handshake and ``phx_join`` on a connected socket (websockets' sans-I/O
    protocol makes the bytes); no connection object stays behind, only the socket."""
    protocol = ClientProtocol(parse_uri(uri))
    protocol.send_request(protocol.connect())
    await loop.sock_sendall(sock, b"".join(protocol.data_to_send()))
    async with asyncio.timeout(HANDSHAKE_TIMEOUT):
        while protocol.state is State.CONNECTING:
            data = await loop.sock_recv(sock, 65536)
            if not data:
                raise ConnectionError("closed during the handshake")
            protocol.receive_data(data)
    if protocol.handshake_exc is not None:
        raise ConnectionError(f"handshake refused: {protocol.handshake_exc}")
    protocol.send_text(JOIN)
    await loop.sock_sendall(sock, b"".join(protocol.data_to_send()))


async def connected(loop: asyncio.AbstractEventLoop, address: tuple[str, int],
                    uri: str) -> socket.socket:
    """One attempt: a TCP connect (refused: OSError), then the handshake and the join."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
        await open_and_join(loop, sock, uri)
    except BaseException:
        sock.close()
        raise
    return sock


async def until_closed(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Read and drop everything (the join's reply) until the server closes or resets."""
    try:
        while await loop.sock_recv(sock, 65536):
            pass
    except OSError:
        pass
    sock.close()


async def lean_clients(url: str, count: int, reconnect_after: Callable[[int], float]) -> None:
    """``count`` clients on ``url`` (an endpoint URL such as ws://host:port/socket)."""
    logging.disable(logging.CRITICAL)
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    uri = f"ws://{address[0]}:{address[1]}{parts.path}/websocket?vsn=2.0.0"
    loop = asyncio.get_running_loop()
    ramp = asyncio.Semaphore(RAMP_AT_ONCE)
    ready = 0

    async def one() -> None:
        nonlocal ready
        async with ramp:
            sock = await connected(loop, address, uri)
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await loop.sock_recv(sock, 65536)  # the join's reply, before the herd
        ready += 1
        if ready == count:
            print("ready", flush=True)
        while True:
            await until_closed(loop, sock)
            # Each try is due its delay after the previous one was due, counted from the
            # close: as if a refused attempt took no time, which on a device of its own it
            # nearly does (~0.1 ms on loopback).  Counting from each failure instead would
            # add, at every step, the time this process spent on its other clients' tries.
            due, tries = loop.time(), 0
            while True:
                tries += 1
                due += reconnect_after(tries)
                await asyncio.sleep(max(0.0, due - loop.time()))
                attempt = time.monotonic()
                try:
                    sock = await connected(loop, address, uri)
                except (OSError, TimeoutError):
                    continue
                break
            sys.stdout.write(f"open {attempt!r} {time.monotonic()!r}\n")
            sys.stdout.flush()

    tasks = [loop.create_task(one()) for _ in range(count)]
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from herd import schedule  # the schedules by name, as the course clients draw them

    url, count, name, seed = sys.argv[1:5]
    asyncio.run(lean_clients(url, int(count), schedule(name, int(seed))))
