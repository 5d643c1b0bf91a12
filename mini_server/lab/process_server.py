"""python -m mini_server.lab.process_server: the demo server in its own OS process, observable.

Theory of operation
-------------------
The lab's :class:`~mini_server.lab.servers.ProcessServer` runs this module so that "kill the
server" can be a real ``kill -9`` and "deploy" a real new process.  It starts an
:class:`~mini_server.server.Endpoint` with the demo routes, plus a second, loopback-only
HTTP listener answering ``GET /state`` with the endpoint's ``snapshot()`` as JSON: the
parent reads server state across the process boundary without a debugger or shared memory.
The snapshot's params are redacted (``mini_server.redaction``), and a request with a
``Host`` that is not loopback or a foreign ``Origin`` gets 403 (:func:`refusal`: a web page
must not read it, even through DNS rebinding).
With ``--history PATH`` it also serves ``history:*`` (chapter 05) backed by that SQLite file,
so a ``kill -9`` can show what survives in a database and what dies with the process.
With ``--pubsub-url redis://...`` and ``--node-name NAME`` (chapter 06) its PubSub reaches
the other nodes through Valkey/Redis (:mod:`mini_server.server.pubsub_redis`), and the
state's ``pubsub`` entry shows the node name, the connection and the counters.
Both listeners bind 127.0.0.1; port 0 lets the OS choose.  On a restart the parent passes
``--fd``: the socket it kept bound to the port while no process served it.  One line goes
to stdout once both listen (the parent parses it); logs go to stderr.

Lifetime:

* SIGTERM / SIGINT: graceful stop (every client gets close 1012), then exit 0.
* ``--watch-stdin``: the parent keeps our stdin pipe open and never writes.  When the parent
  dies, however it dies (even ``kill -9``), the OS closes the pipe, we read EOF and exit at
  once (the OS then closes our sockets: clients see 1006).  No orphans, no ``preexec_fn``
  (unsafe in a threaded parent such as a Jupyter kernel) and no PR_SET_PDEATHSIG (which
  fires when the *thread* that spawned us exits, not the process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys

from mini_server.server import Endpoint
from mini_server.server.history import History
from mini_server.server.history_channel import history_routes
from mini_server.server.log_lines import Clip
from mini_server.server.pubsub import PubSub

logger = logging.getLogger(__name__)

READY_PREFIX = "mini_server process"


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _host_of(value: str) -> str:
    """The host part of a Host header or an Origin, lower-cased, without port or brackets."""
    value = value.strip().lower()
    if "://" in value:
        value = value.split("://", 1)[1].split("/", 1)[0]
    if value.startswith("["):  # [::1]:8000
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def refusal(headers: dict[str, str]) -> str | None:
    """Why a /state request must be refused (403), or None.

    The listener binds loopback, but a browser on this machine can still be made to ask:
    a page on any site may fetch ``http://127.0.0.1:PORT/state`` (it then carries that
    site's ``Origin``), and DNS rebinding points a foreign name at 127.0.0.1 (the ``Host``
    is then that name).  Either way the snapshot must not reach the page.  Without an
    ``Origin`` (the lab's parent, curl) and with a loopback ``Host`` (or none, as HTTP/1.0
    allows) the request is served.
    """
    host = headers.get("host")
    if host is not None and _host_of(host) not in LOOPBACK_HOSTS:
        return f"Host {Clip(host)!r} is not loopback"
    origin = headers.get("origin")
    if origin is not None and _host_of(origin) not in LOOPBACK_HOSTS:
        return f"Origin {Clip(origin)!r} is not a page on this machine"
    return None


def _headers(request: bytes) -> dict[str, str]:
    lines = request.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}


async def _serve_state(endpoint: Endpoint, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
    """Answer one HTTP/1.0 request: GET /state -> 200 JSON snapshot (403 from a foreign
    Host or Origin), anything else 404."""
    try:
        async with asyncio.timeout(5):
            request = await reader.readuntil(b"\r\n\r\n")
        parts = request.split(b"\r\n", 1)[0].split()
        why = refusal(_headers(request))
        if why is not None:
            logger.warning("! /state refused: %s", why)
            status, body = "403 Forbidden", json.dumps({"error": why}).encode()
        elif parts[:2] == [b"GET", b"/state"]:
            status, body = "200 OK", json.dumps(endpoint.snapshot()).encode()
        else:
            status, body = "404 Not Found", b'{"error": "try GET /state"}'
        writer.write(f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        pass  # a client that went away mid-request harms nobody
    finally:
        writer.close()


async def _stdin_closed() -> None:
    """Return when our stdin pipe reaches EOF: the parent is gone."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def main(args: argparse.Namespace) -> int:
    """Serve until SIGTERM / SIGINT (graceful) or until the parent dies (abrupt)."""
    # A process that is only a server: freezing after ramps keeps its collections short.
    options: dict[str, object] = {"answer_heartbeats": not args.drop_heartbeats,
                                  "gc_freeze": True}
    if args.idle_timeout is not None:
        options["idle_timeout"] = args.idle_timeout
    if args.fd is not None:  # the parent kept our port bound while no process served it
        # Say IPPROTO_TCP explicitly: without SO_PROTOCOL (macOS) fileno= alone reads 0 and
        # asyncio would leave Nagle on for every accepted connection.
        options["sock"] = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP,
                                        fileno=args.fd)
    history = None
    routes = None  # the demo routes
    if args.history is not None:  # chapter 05: history:* kept in a SQLite file the parent names
        history = History(args.history)
        routes = history_routes(history)
    adapter = None
    if args.pubsub_url is not None:  # chapter 06: one node of a cluster sharing PubSub
        from mini_server.server.pubsub_redis import RedisAdapter

        adapter = RedisAdapter(args.pubsub_url, args.node_name or f"node-{os.getpid()}")
        options["pubsub"] = PubSub(adapter)
        await adapter.start(ready_within=20)
    endpoint = await Endpoint(routes, host=args.host, port=args.port, **options).start()
    state_server = await asyncio.start_server(
        lambda r, w: _serve_state(endpoint, r, w), "127.0.0.1", args.state_port)
    state_port = state_server.sockets[0].getsockname()[1]
    print(f"{READY_PREFIX} pid={os.getpid()} {endpoint.url} "
          f"state=http://127.0.0.1:{state_port}/state", flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiters = [asyncio.create_task(stop.wait())]
    if args.watch_stdin:
        waiters.append(asyncio.create_task(_stdin_closed()))
    _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if not stop.is_set():
        logger.warning("x parent process gone (stdin closed): exiting at once")
        os._exit(1)  # like kill -9: no close frames, no cleanup
    await endpoint.stop()
    if history is not None:
        history.close()
    if adapter is not None:
        await adapter.close()
    state_server.close()
    await state_server.wait_closed()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m mini_server.lab.process_server",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port chosen by the OS")
    parser.add_argument("--state-port", type=int, default=0)
    parser.add_argument("--fd", type=int, default=None,
                        help="an inherited socket already bound to the port: listen on it")
    parser.add_argument("--idle-timeout", type=float, default=None)
    parser.add_argument("--drop-heartbeats", action="store_true",
                        help="never answer heartbeats (simulates a server bug)")
    parser.add_argument("--history", default=None, metavar="PATH",
                        help="also serve history:* with messages stored in this SQLite file")
    parser.add_argument("--pubsub-url", default=None, metavar="URL",
                        help="share PubSub with other nodes through this Valkey/Redis "
                             "(redis://127.0.0.1:6379)")
    parser.add_argument("--node-name", default=None,
                        help="this node's name in the cluster (unique; default node-PID)")
    parser.add_argument("--watch-stdin", action="store_true",
                        help="exit at once when stdin closes (the parent died)")
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    logging.basicConfig(level=arguments.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    sys.exit(asyncio.run(main(arguments)))
