"""``python -m mini_server``: serve the reference channels until SIGTERM or Ctrl-C.

Theory of operation
-------------------
Starts an :class:`~mini_server.server.Endpoint` serving ``../shared/REFERENCE_CHANNELS.md``
(the ``room:*`` and ``lab:*`` channels, ``token=bad`` refused, ``user_id`` naming the
socket) with Phoenix's defaults (idle timeout 60 s, ``check_origin`` against host
``localhost``, no subprotocol unless ``--auth-token``), prints one line with the socket URL
(flushed, so a parent process can read the port when ``--port 0``), then waits for
SIGTERM/SIGINT and stops gracefully: every connection closes with 1012 and the process exits
0 well within 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from mini_server.protocol import SERVER_IDLE_TIMEOUT
from mini_server.server import Endpoint
from mini_server.server.demo import DEMO_ROUTES, reference_connect, reference_socket_id
from mini_server.server.origin import parse_check_origin

DEFAULT_MAX_FRAME_SIZE = 1_048_576  # bytes; Phoenix has no limit (PROTOCOL.md section 11)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m mini_server",
                                     description="A small Phoenix Channels server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000, help="0 picks a free port")
    parser.add_argument("--idle-timeout", type=float, default=SERVER_IDLE_TIMEOUT,
                        help="seconds without a received frame before closing (0 = never)")
    parser.add_argument("--check-origin", type=parse_check_origin, default=True,
                        metavar="true|false|ORIGINS",
                        help="Phoenix's check_origin: true (the default: Origin host must be "
                             "--url-host), false, or a comma-separated list such as "
                             "'https://example.com,//*.other.com'; no Origin is always allowed")
    parser.add_argument("--url-host", default="localhost",
                        help="the endpoint's configured host for --check-origin true")
    parser.add_argument("--auth-token", action="store_true",
                        help="accept phoenix.js authToken (bearer subprotocol) and answer "
                             "the 'phoenix' subprotocol, as Phoenix's auth_token: true")
    parser.add_argument("--max-frame-size", type=int, default=DEFAULT_MAX_FRAME_SIZE,
                        help="largest incoming frame in bytes, 0 = unlimited (Phoenix's "
                             "default); larger frames close with 1009")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false",
                        help="do not gc.freeze() after ramps of connections (it keeps full "
                             "garbage collections short with thousands of sockets)")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Run the endpoint until a stop signal arrives."""
    endpoint = Endpoint(DEMO_ROUTES, host=args.host, port=args.port,
                        connect=reference_connect, socket_id=reference_socket_id,
                        idle_timeout=args.idle_timeout or None,
                        max_frame_size=args.max_frame_size or None,
                        check_origin=args.check_origin, url_host=args.url_host,
                        auth_token=args.auth_token, gc_freeze=args.gc_freeze)
    await endpoint.start()
    print(f"mini_server listening on {endpoint.url} (clients connect to "
          f"{endpoint.url}/websocket)", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        await endpoint.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    # websockets' own "server listening/closing" lines duplicate ours without a prefix.
    logging.getLogger("websockets.server.mini_server").setLevel(logging.WARNING)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
