"""Bench kit: a server and a crowd of raw WebSocket clients, each in its own OS process.

Theory of operation
-------------------
The figures the benchmarks report are ratios between our server and a bare ``websockets``
server (same version, no compression, no pings) measured in the same run, so the machine's
speed cancels out.  Clients run in **other processes** than the server, so a benchmark
measures the server's work, not the clients'.  The clients are deliberately thin (an
``asyncio.Protocol`` that writes its handshake and join by hand and only counts a marker in
what it receives), so their own cost adds as little as possible to a fan-out time.

``python bench/crowd.py serve KIND [--gc-freeze]`` starts a server (KIND: ``fastlane``,
``intercept``: our :class:`~mini_server.server.Endpoint`; ``bare``: websockets'
``serve()`` + ``broadcast()``; ``echo``: websockets answering every frame with an ok
reply), prints ``port P`` and answers one line per command read
from stdin: ``count`` (subscribers), ``b SEQ`` (broadcast message SEQ; answers the
monotonic time before and after the call), ``stats`` (RSS, GC-tracked objects, the longest
full collection and how many there were), ``quit``.

``python bench/crowd.py clients PORT N JOIN`` opens N connections (joining ``room:bench``
when JOIN is 1), prints ``ready SECONDS`` (first connect to last join reply), then
``got SEQ T`` once all N have received message SEQ.
Broadcasts are paced by the parent (the next goes out once every client has the last), so
each connection's count moves by one per message.  ``time.monotonic()`` is one system-wide
clock on Linux and macOS, so ``T - T0`` spans processes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOPIC = "room:bench"
MARK = b'"seq":'
START_TIMEOUT = 120.0  # 10k connections on two busy cores take a while


# --- the server side ---------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; else the peak, from getrusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class GCWatch:
    """Times every full (generation 2) collection through ``gc.callbacks``."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.count = 0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.count += 1
            self.longest = max(self.longest, time.perf_counter() - self._start)


def payload(seq: int, size: int) -> dict[str, Any]:
    """The broadcast payload: ``seq`` is what clients count."""
    return {"body": "x" * size, "seq": seq}


async def serve(kind: str, size: int, gc_freeze: bool, log_level: str | None = None) -> None:
    """Run one server and answer the parent's commands until ``quit``."""
    sys.path.insert(0, ROOT)
    from websockets.asyncio.server import broadcast as ws_broadcast
    from websockets.asyncio.server import serve as ws_serve

    # The same two rooms chapter 07 measures in the kernel: fastlane, and new_msg intercepted.
    from mini_server.lab.fanout import FastRoom, InterceptRoom
    from mini_server.protocol import Broadcast, V2JSONSerializer
    from mini_server.server import Endpoint

    # Clients that vanish at the end would each log a line; nothing is logged unless
    # --log-level asks (bench/joins.py measures what logging costs; stderr is /dev/null).
    if log_level is None:
        logging.disable(logging.CRITICAL)
    else:
        logging.basicConfig(level=log_level, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(message)s")
    watch = GCWatch()
    endpoint = None
    conns: set[Any] = set()
    serializer = V2JSONSerializer()
    if kind == "bare":
        async def handler(ws: Any) -> None:
            conns.add(ws)
            try:
                await ws.wait_closed()
            finally:
                conns.discard(ws)

        server = await ws_serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None,
                                max_queue=None)
        port = server.sockets[0].getsockname()[1]
    elif kind == "echo":
        async def echo(ws: Any) -> None:
            # The least a server can do for a join: decode it, answer ok with its refs.
            async for raw in ws:
                join_ref, ref, topic, _event, _payload = json.loads(raw)
                await ws.send(json.dumps([join_ref, ref, topic, "phx_reply",
                                          {"status": "ok", "response": {}}]))

        server = await ws_serve(echo, "127.0.0.1", 0, compression=None, ping_interval=None)
        port = server.sockets[0].getsockname()[1]
    else:
        room = FastRoom if kind == "fastlane" else InterceptRoom
        options = {"gc_freeze": True} if gc_freeze else {}
        endpoint = Endpoint({"room:*": room}, port=0, idle_timeout=None, **options)
        await endpoint.start()
        port = endpoint.port
    print(f"port {port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        command = line[0]
        if command == "count":
            count = len(conns) if endpoint is None else endpoint.pubsub.subscribers(TOPIC)
            answer = f"count {count}"
        elif command == "b":
            seq = int(line[1])
            if endpoint is None:
                t0 = time.monotonic()
                frame = serializer.fastlane(Broadcast(TOPIC, "new_msg", payload(seq, size)))
                ws_broadcast(conns, frame)
            else:
                t0 = time.monotonic()
                await endpoint.broadcast(TOPIC, "new_msg", payload(seq, size))
            answer = f"b {seq} {t0!r} {time.monotonic()!r}"
        elif command == "stats":
            answer = (f"stats {rss_bytes()} {len(gc.get_objects())} {watch.longest!r} "
                      f"{watch.count}")
        else:
            break
        print(answer, flush=True)
    if endpoint is not None:
        await endpoint.aclose()


# --- the client side ---------------------------------------------------------------------


def client_frame(text: str) -> bytes:
    """A masked client text frame (the zero mask: valid, and XOR with it is a no-op)."""
    data = text.encode()
    if len(data) < 126:
        header = bytes([0x81, 0x80 | len(data)])
    else:
        header = bytes([0x81, 0x80 | 126]) + len(data).to_bytes(2, "big")
    return header + b"\x00\x00\x00\x00" + data


class Crowd:
    """N connections in this process; reports when all of them have the current message."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()
        self.ramp = 0.0  # seconds from the first connect to the last join reply
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.arrived = 0
        self.seq = 0

    def one_ready(self) -> None:
        self.ready += 1
        if self.ready == self.total:
            self.ramp = time.monotonic() - self.started
            self.all_ready.set()

    def one_arrived(self) -> None:
        self.arrived += 1
        if self.arrived == self.total:
            now = time.monotonic()
            sys.stdout.write(f"got {self.seq} {now!r}\n")
            sys.stdout.flush()
            self.arrived = 0
            self.seq += 1


class RawClient(asyncio.Protocol):
    """One hand-written WebSocket client: handshake, optional join, then count markers."""

    def __init__(self, crowd: Crowd, port: int, join: bool, index: int) -> None:
        self.crowd, self.port, self.join, self.index = crowd, port, join, index
        self.phase = "handshake"
        self.buffer = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(
            f"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            .encode())

    def data_received(self, data: bytes) -> None:
        if self.phase == "live":
            chunk = self.buffer + data
            for _ in range(chunk.count(MARK)):
                self.crowd.one_arrived()
            self.buffer = chunk[-(len(MARK) - 1):]
            return
        self.buffer += data
        if self.phase == "handshake" and b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"handshake refused: {head[:80]!r}")
            if self.join:
                self.phase = "joining"
                ref = str(self.index)
                self.transport.write(client_frame(json.dumps([ref, ref, TOPIC, "phx_join", {}])))
            else:
                self.phase = "live"
                self.buffer = b""
                self.crowd.one_ready()
        if self.phase == "joining" and b"phx_reply" in self.buffer:
            self.phase = "live"
            self.buffer = b""
            self.crowd.one_ready()


async def clients(port: int, count: int, join: bool) -> None:
    """Open ``count`` clients, say ``ready``, then report arrivals until stdin closes."""
    loop = asyncio.get_running_loop()
    crowd = Crowd(count)
    batch = 100  # concurrent handshakes: past the listen backlog some would be refused
    transports = []
    for start in range(0, count, batch):
        made = await asyncio.gather(*(
            loop.create_connection(lambda n=n: RawClient(crowd, port, join, n), "127.0.0.1", port)
            for n in range(start, min(count, start + batch))))
        transports.extend(t for t, _ in made)
    async with asyncio.timeout(START_TIMEOUT):
        await crowd.all_ready.wait()
    print(f"ready {crowd.ramp!r}", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()  # EOF: the parent is done with us
    for transport in transports:
        transport.abort()


# --- the parent side ---------------------------------------------------------------------


class Child:
    """A bench child process spoken to line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, *args: str, quiet: bool = False) -> Child:
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(HERE, "crowd.py"), *args, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL if quiet else None)
        return cls(process)

    async def line(self, within: float = START_TIMEOUT) -> list[str]:
        """The next line it prints, split; raises if it exits first."""
        async with asyncio.timeout(within):
            raw = await self.process.stdout.readline()  # type: ignore[union-attr]
        if not raw:
            raise RuntimeError(f"bench child {self.process.pid} exited "
                               f"(code {await self.process.wait()})")
        return raw.decode().split()

    async def ask(self, command: str, within: float = START_TIMEOUT) -> list[str]:
        """Send one command line and read the answer."""
        self.process.stdin.write(f"{command}\n".encode())  # type: ignore[union-attr]
        return await self.line(within)

    async def close(self) -> None:
        """Close its stdin (it exits), then make sure it is gone."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            async with asyncio.timeout(10):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@dataclass
class Run:
    """What one server did for one crowd."""

    kind: str
    subscribers: int
    fanout: list[float] = field(default_factory=list)  # first send -> last client has it
    call: list[float] = field(default_factory=list)  # the broadcast call itself
    rss_before: int = 0
    rss_after: int = 0
    objects_before: int = 0
    objects_after: int = 0
    longest_full_gc: float = 0.0
    full_gcs: int = 0

    @property
    def rss_per_socket(self) -> float:
        return (self.rss_after - self.rss_before) / max(1, self.subscribers)

    @property
    def objects_per_socket(self) -> float:
        return (self.objects_after - self.objects_before) / max(1, self.subscribers)


async def run_crowd(kind: str, subscribers: int, messages: int, *, processes: int = 1,
                    size: int = 16, gc_freeze: bool = False, settle: float = 0.0) -> Run:
    """Start a KIND server, ``subscribers`` clients over ``processes`` processes, broadcast."""
    server = await Child.start("serve", kind, "--size", str(size),
                               *(["--gc-freeze"] if gc_freeze else []))
    crowds: list[Child] = []
    run = Run(kind, subscribers)
    try:
        port = int((await server.line())[1])
        _, rss, objects, _, _ = await server.ask("stats")
        run.rss_before, run.objects_before = int(rss), int(objects)
        shares = [subscribers // processes + (n < subscribers % processes)
                  for n in range(processes)]
        crowds = [await Child.start("clients", str(port), str(share),
                                    "0" if kind == "bare" else "1")
                  for share in shares if share]
        for crowd in crowds:
            assert (await crowd.line())[0] == "ready"
        async with asyncio.timeout(START_TIMEOUT):
            # Polled: the server is another process, there is no event to wait on.
            while int((await server.ask("count"))[1]) < subscribers:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        if settle:
            await asyncio.sleep(settle)  # let a ramp-triggered freeze happen first
        _, rss, objects, _, _ = await server.ask("stats")
        run.rss_after, run.objects_after = int(rss), int(objects)
        for seq in range(messages):
            _, _, t0, t1 = await server.ask(f"b {seq}")
            done = [float((await crowd.line())[2]) for crowd in crowds]
            run.fanout.append(max(done) - float(t0))
            run.call.append(float(t1) - float(t0))
        _, _, _, longest, count = await server.ask("stats")
        run.longest_full_gc, run.full_gcs = float(longest), int(count)
    finally:
        for crowd in crowds:
            await crowd.close()
        await server.close()
    return run


def spread(values: Sequence[float], scale: float = 1e3, unit: str = "ms") -> str:
    """``min/median/max`` of ``values`` in ``unit``."""
    return (f"min {min(values) * scale:.2f} / median {statistics.median(values) * scale:.2f}"
            f" / max {max(values) * scale:.2f} {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("serve")
    s.add_argument("kind", choices=["fastlane", "intercept", "bare", "echo"])
    s.add_argument("--log-level", default=None)
    s.add_argument("--size", type=int, default=16)
    s.add_argument("--gc-freeze", action="store_true")
    c = sub.add_parser("clients")
    c.add_argument("port", type=int)
    c.add_argument("count", type=int)
    c.add_argument("join", type=int)
    args = parser.parse_args()
    if args.role == "serve":
        asyncio.run(serve(args.kind, args.size, args.gc_freeze, args.log_level))
    else:
        asyncio.run(clients(args.port, args.count, bool(args.join)))


if __name__ == "__main__":
    main()
