"""The Endpoint: listen, shake hands, track connections, stop, kill, restart, snapshot.

Theory of operation
-------------------
``start()`` runs websockets' ``serve()`` on ``host:port`` (port 0 lets the OS choose; the
chosen port is kept so ``restart()`` reuses it).  While the endpoint is down between
``stop()``/``kill()`` and the next ``start()`` it keeps the port **bound but not listening**:
clients are refused (ECONNREFUSED, as from a dead server), yet no other server on the host
(another kernel on a JupyterHub, a test asking for port 0) can take the port and receive
our clients' reconnects.  ``start()`` listens on that same socket; ``aclose()`` releases it.
``sock=`` hands the endpoint such a bound socket to start on (the lab's process server gets
its port this way across a restart).

Only ``GET {path}/websocket`` upgrades, checked in Phoenix's order (PROTOCOL.md 1.3), with
Phoenix's answers (Bandit's statuses; bodies empty unless said):

1. another path -> HTTP 404 with Phoenix's JSON body ``{"errors":{"detail":"Not Found"}}``;
2. a method other than GET -> 400;
3. ``Origin`` -> ``origin.origin_allowed`` with ``check_origin`` (default True: the host must
   be ``url_host``, default ``"localhost"``; no Origin header is always allowed) -> 403;
4. subprotocols: only with ``auth_token=True`` (phoenix.js's ``authToken``): the
   ``base64url.bearer.phx.<token>`` entry becomes ``connect_info["auth_token"]`` and
   ``phoenix`` is answered (another offer without ``phoenix`` -> 403); without it the offer
   is ignored and the 101 names no subprotocol, as Phoenix's default socket does;
5. ``vsn`` query param -> serializer via ``protocol.negotiate`` (missing -> V1 objects,
   unparseable or unsupported -> HTTP 403);
6. ``connect(params, connect_info)`` hook (may be async) -> a dict of assigns accepts,
   ``None``/``False`` refuses with HTTP 403; then ``socket_id(assigns)`` names the socket;
7. a request that is not a valid WebSocket upgrade (no ``Connection: upgrade``, version
   other than 13, no key) -> 400, checked last as Bandit does after Phoenix's checks.

After the upgrade websockets runs the connection through :class:`PhoenixConnection`, which
answers every client close frame with **1000** and an empty reason (Bandit's answer) and
keeps every close reason off the wire (they are logged instead).

Each accepted connection becomes a :class:`~mini_server.server.transport.Transport`,
tracked in ``self.transports`` until its handler returns.  Lifecycle:

* ``stop()``: stop listening, close every connection with **1012** after its queued frames
  (channels get ``terminate(("shutdown", "closed"))``), wait at most ``drain_timeout`` and
  kill whatever remains (e.g. a connection parked in a join that never returns).  This is
  Phoenix's drain, minus the batching.
* ``kill()``: abort every TCP connection (no close frame: clients see **1006**) and the
  listener; channel tasks are cancelled without terminate; all state is gone.
* ``restart()``: stop if running, then start again on the same port with fresh state.
* ``disconnect(id)``: broadcast ``"disconnect"`` on the socket id topic, as Phoenix does;
  every socket with that id closes with **1001**.

Limits (keyword arguments): ``idle_timeout`` 60 s (Phoenix's; None disables),
``max_frame_size`` 1 MiB (Phoenix has none: a deliberate deviation, PROTOCOL.md section 11),
``max_channels`` 100, ``mailbox_size`` 1000 client pushes waiting per channel,
``max_outgoing_bytes`` 8 MiB and ``max_outgoing`` 10 000 frames unread per connection
(past either the connection is aborted: a slow or non-reading client, see
``transport.py``), ``send_timeout`` 30 s for one frame to be taken (Thousand Island's
default; else abort), ``close_timeout`` 1 s for a close frame to be written (else abort;
also websockets' closing handshake), ``drain_timeout`` for ``stop()`` as a whole.

``gc_freeze=True`` calls ``gc.freeze()`` once serving and after each ramp of connections
(``gc_freeze.py``: full collections stay short at 10 000 sockets); process-wide, so the CLI
and the lab's process server turn it on and an endpoint in a kernel leaves it off.

``stop`` and ``kill`` are idempotent.  ``snapshot()`` walks the live tables (no I/O, no
copies of queues) so a panel can poll it ten times a second; params pass through
``mini_server.redaction.redact`` (the course's one rule: secret-looking keys such as
``access_token`` or ``api_key`` and token-looking values read ``"[redacted]"``); each
socket shows its ``outgoing`` frames and bytes, next to the endpoint's
``max_outgoing_bytes``; ``timers`` counts the channels'
``send_after``/``send_interval`` timers still scheduled; ``pubsub`` is the adapter's view
(``{"adapter": "local"}`` on one node; node name, connection and counters with Valkey).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from mini_server.protocol import (
    AUTH_TOKEN_PREFIX,
    MAX_CHANNELS_PER_TRANSPORT,
    PHOENIX_SUBPROTOCOL,
    SERVER_IDLE_TIMEOUT,
    WEBSOCKET_PATH,
    CloseCode,
    ProtocolError,
    negotiate,
)
from mini_server.redaction import redact
from mini_server.server import handshake
from mini_server.server.channel import Channel
from mini_server.server.gc_freeze import RampFreezer
from mini_server.server.log_lines import server_logger
from mini_server.server.origin import CheckOrigin, origin_allowed, parse_allowed
from mini_server.server.pubsub import PubSub
from mini_server.server.states import ENDPOINT_TRANSITIONS, EndpointState, Lifecycle
from mini_server.server.transport import Transport

log = server_logger(__name__)

#: Default outgoing budget per connection: eight frames at the 1 MiB frame limit, far more
#: than a reading client ever has queued, small enough that a stuck one cannot matter.
MAX_OUTGOING_BYTES = 8 * 1_048_576
#: Seconds one frame may wait for the client's TCP window before the connection is aborted:
#: Thousand Island's (Bandit's) ``send_timeout`` default, which Ranch (Cowboy's) shares.
SEND_TIMEOUT = 30.0
#: Connections the kernel completes and queues for us while the loop is busy: Thousand
#: Island's (Bandit's) default ``backlog``.  asyncio's own 100 overflows in a reconnect
#: herd, and the kernel then drops SYNs, which a client retries only a second later.
LISTEN_BACKLOG = 1024
ConnectHook = Callable[[dict[str, Any], dict[str, Any]], Any]


def reserve_port(host: str, port: int) -> socket.socket | None:
    """A socket bound to host:port but not listening: connects are refused, the port is ours.

    The kernel treats the port as in use, so no ``bind(0)`` elsewhere is handed it; a later
    ``listen()`` on this very socket (here, or in a child process it is passed to) serves
    on it again.  None (and a logged warning) when the port cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on an accepted connection only when
    # the listening socket says it is TCP, and without it two frames back to back stall ~40 ms
    # (Nagle + delayed ACK) on every connection accepted after a kill() or restart().
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        log.warning("! could not keep port %d reserved while down: %s", port, exc)
        return None
    return sock


def as_tcp(sock: socket.socket) -> socket.socket:
    """``sock`` as an IPPROTO_TCP socket object, so asyncio sets TCP_NODELAY on what it accepts.

    asyncio's ``_set_nodelay`` looks at the listening socket's ``proto`` (inherited by every
    accepted socket), not at the kernel: a ``socket.socket(AF_INET, SOCK_STREAM)`` says 0 and
    its connections keep Nagle on.  Same file descriptor, new Python object; others unchanged.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return sock
    if sock.proto == socket.IPPROTO_TCP:
        return sock
    blocking = sock.getblocking()
    tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    tcp.setblocking(blocking)
    return tcp


class Endpoint:
    """A Phoenix-compatible socket endpoint serving ``{path}/websocket``."""

    def __init__(self, channels: Mapping[str, type[Channel]] | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, path: str = "/socket",
                 connect: ConnectHook | None = None,
                 socket_id: Callable[[dict[str, Any]], str | None] | None = None,
                 idle_timeout: float | None = SERVER_IDLE_TIMEOUT,
                 max_frame_size: int | None = 1_048_576,
                 max_channels: int = MAX_CHANNELS_PER_TRANSPORT,
                 answer_heartbeats: bool = True, pubsub: PubSub | None = None,
                 check_origin: CheckOrigin = True, url_host: str = "localhost",
                 auth_token: bool = False,
                 mailbox_size: int = 1000, max_outgoing: int = 10_000,
                 max_outgoing_bytes: int = MAX_OUTGOING_BYTES,
                 send_timeout: float | None = SEND_TIMEOUT,
                 close_timeout: float = 1.0, drain_timeout: float = 1.5,
                 sock: socket.socket | None = None, gc_freeze: bool = False) -> None:
        if channels is None:
            from mini_server.server.demo import DEMO_ROUTES
            channels = DEMO_ROUTES
        self.routes = dict(channels)
        self.host, self.port, self.path = host, port, path.rstrip("/")
        self.connect_hook, self.socket_id_hook = connect, socket_id
        self.idle_timeout, self.max_frame_size = idle_timeout, max_frame_size
        self.max_channels, self.answer_heartbeats = max_channels, answer_heartbeats
        if not isinstance(check_origin, bool):
            check_origin = list(check_origin)
            parse_allowed(check_origin)  # a bad entry fails here, at configuration
        self.check_origin, self.url_host, self.auth_token = check_origin, url_host, auth_token
        self.mailbox_size, self.max_outgoing = mailbox_size, max_outgoing
        self.outgoing_high = max(1, max_outgoing // 10)
        if max_outgoing_bytes < 1:
            raise ValueError(f"max_outgoing_bytes must be positive, got {max_outgoing_bytes}")
        self.max_outgoing_bytes, self.send_timeout = max_outgoing_bytes, send_timeout
        self.outgoing_high_bytes = max(1, max_outgoing_bytes // 4)  # the reader pauses above
        self.close_timeout, self.drain_timeout = close_timeout, drain_timeout
        self._own_pubsub = pubsub is None
        self.pubsub = pubsub or PubSub()
        self.transports: set[Transport] = set()
        self.channel_timers: set[Any] = set()  # every channel's live send_after/send_interval
        self.lifecycle = Lifecycle(EndpointState.STOPPED, ENDPOINT_TRANSITIONS, "endpoint")
        self._server: Server | None = None
        self._port_hold: socket.socket | None = None
        self._hold_finalizer: weakref.finalize | None = None
        self.gc_freezer = RampFreezer() if gc_freeze else None
        if sock is not None:  # a bound socket handed over (e.g. by a parent process)
            sock = as_tcp(sock)
            self.port = sock.getsockname()[1]
            self._keep_port(sock)

    @property
    def state(self) -> EndpointState:
        """Listening, draining, or down after a stop or a kill (``states.EndpointState``)."""
        return self.lifecycle.state

    @property
    def running(self) -> bool:
        """True while the endpoint listens."""
        return self.state is EndpointState.RUNNING

    @property
    def url(self) -> str:
        """The socket URL clients are given; they append ``/websocket`` themselves."""
        return f"ws://{self.host}:{self.port}{self.path}"

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> Endpoint:
        """Listen on host:port (a free port when 0); returns self."""
        if self._server is not None:
            return self
        held = self._take_port_hold()
        where: dict[str, Any] = {"host": self.host, "port": self.port, "backlog": LISTEN_BACKLOG}
        if held is not None:
            # asyncio now owns it and closes it with the server; its listen() takes the backlog
            where = {"sock": held, "backlog": LISTEN_BACKLOG}
        self._server = await serve(
            self._handle, **where,
            process_request=self._process_request, select_subprotocol=self._select_subprotocol,
            create_connection=handshake.PhoenixConnection,
            compression=None,  # Phoenix's websocket :compress defaults to false
            ping_interval=None,  # Phoenix sends no pings; clients heartbeat instead
            max_size=self.max_frame_size, close_timeout=self.close_timeout,
            logger=server_logger("websockets.server.mini_server"))
        self.port = self._server.sockets[0].getsockname()[1]
        self.lifecycle.fire("start")
        if self.gc_freezer is not None:
            self.gc_freezer.started()
        log.info("= listening on %s", self.url)
        return self

    async def stop(self) -> None:
        """Graceful: close every connection with 1012, terminate channels, stop listening."""
        server, self._server = self._server, None
        if server is None:
            return
        self.lifecycle.fire("stop")
        server.server.close()  # stop listening now (websockets' close() only schedules it)
        server.close(close_connections=False)
        self._hold_port()
        for transport in list(self.transports):
            transport.close(CloseCode.SERVICE_RESTART, "service restart")
        waiter = asyncio.ensure_future(server.wait_closed())
        done, _ = await asyncio.wait({waiter}, timeout=self.drain_timeout)
        if not done:
            log.warning("- drain took over %.1f s; aborting %d connections",
                        self.drain_timeout, len(self.transports))
            for transport in list(self.transports):
                transport.kill()
            await waiter
        self._fresh_state()
        self.lifecycle.fire("stopped")
        log.info("= stopped %s", self.url)

    async def kill(self) -> None:
        """Abort every connection without close frames (clients see 1006)."""
        server, self._server = self._server, None
        if server is None:
            return
        self.lifecycle.fire("kill")
        server.server.close()  # stop listening now (websockets' close() only schedules it)
        server.close(close_connections=False)
        self._hold_port()
        transports = list(self.transports)
        for transport in transports:  # first every connection at once, as a dying node's OS
            transport.cut_tcp()
        for transport in transports:
            transport.kill()
        await server.wait_closed()
        self._fresh_state()
        log.info("= killed %s", self.url)

    async def restart(self) -> None:
        """Start again on the same port with fresh state (stopping first if running)."""
        await self.stop()
        await self.start()

    async def aclose(self) -> None:
        """Stop if running and give the port back to the OS."""
        await self.stop()
        self._release_port()

    def _hold_port(self) -> None:
        sock = reserve_port(self.host, self.port)
        if sock is not None:
            self._keep_port(sock)

    def _keep_port(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._port_hold = sock
        # An endpoint dropped while down must not leak the socket (or warn about it).
        self._hold_finalizer = weakref.finalize(self, sock.close)

    def _take_port_hold(self) -> socket.socket | None:
        held, self._port_hold = self._port_hold, None
        if self._hold_finalizer is not None:
            self._hold_finalizer.detach()
            self._hold_finalizer = None
        return held

    def _release_port(self) -> None:
        held = self._take_port_hold()
        if held is not None:
            held.close()

    def _fresh_state(self) -> None:
        self.transports.clear()
        if self.gc_freezer is not None:
            self.gc_freezer.stopped()
        if self._own_pubsub:
            self.pubsub = PubSub()

    async def __aenter__(self) -> Endpoint:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- operations ---------------------------------------------------------------------

    async def disconnect(self, socket_id: str) -> int:
        """Close every socket with this id with 1001; returns how many there were."""
        count = sum(1 for t in self.transports if t.socket_id == socket_id)
        await self.pubsub.broadcast(socket_id, "disconnect", {})
        return count

    async def broadcast(self, topic: str, event: str, payload: Any) -> None:
        """Broadcast to every subscriber of ``topic`` (Endpoint.broadcast/3)."""
        await self.pubsub.broadcast(topic, event, payload)

    def snapshot(self) -> dict[str, Any]:
        """Live state for panels and tests, secrets redacted."""
        # A killed connection is gone the moment kill() aborts it (a dead process keeps no
        # memory), even if its handler has not finished unwinding yet.
        sockets = [t.describe(redact) for t in list(self.transports) if not t.killed]
        topics: dict[str, int] = {}
        for sock in sockets:
            for ch in sock["channels"]:
                topics[ch["topic"]] = topics.get(ch["topic"], 0) + 1
        return {"running": self.running, "url": self.url, "sockets": sockets,
                "max_outgoing_bytes": self.max_outgoing_bytes,
                "topics": topics, "socket_count": len(sockets),
                "channel_count": sum(topics.values()),
                "timers": len(self.channel_timers),
                "pubsub": self.pubsub.describe()}

    # --- handshake and connections ---------------------------------------------------------

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        try:
            return await self._check_request(conn, request)
        except Exception:
            log.exception("! connect failed for %s", request.path)
            return conn.respond(500, "Internal Server Error\n")

    async def _check_request(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path != self.path + WEBSOCKET_PATH:
            log.warning("! no socket at %s (try %s%s)", url.path, self.path, WEBSOCKET_PATH)
            return handshake.not_found()
        if request.method != "GET":
            log.warning("! %s %s: a socket only upgrades GET requests", request.method, url.path)
            return handshake.bad_request()
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, self.check_origin, self.url_host):
            log.error("! refused Origin %r (check_origin=%r, host %r): a page on another site "
                      "may not use this socket; pass check_origin=[...] or False to allow it",
                      origin, self.check_origin, self.url_host)
            return handshake.forbidden()
        connect_info: dict[str, Any] = {
            "peer_data": {"address": (conn.remote_address or ("?",))[0],
                          "port": (conn.remote_address or ("?", None))[1]},
            "uri": request.path,
            "user_agent": request.headers.get("User-Agent"),
        }
        if self.auth_token:
            offered = handshake.offered_subprotocols(request)
            token = handshake.bearer_token(offered)
            if token is not None:
                connect_info["auth_token"] = token
            others = [p for p in offered if not p.startswith(AUTH_TOKEN_PREFIX)]
            if others and PHOENIX_SUBPROTOCOL not in others:
                log.warning("! refused subprotocols %r (only 'phoenix' is served)", others)
                return handshake.forbidden()
        params = parse_params(url.query)
        try:
            serializer = negotiate(params.get("vsn"))
        except ProtocolError as exc:
            log.warning("! refused: %s", exc)
            return handshake.forbidden()
        accepted = await self.authorize(params, connect_info)
        if accepted is None:
            return handshake.forbidden()
        assigns, socket_id = accepted
        problem = handshake.upgrade_problem(request)
        if problem is not None:
            log.warning("! not a WebSocket upgrade: %s", problem)
            return handshake.bad_request(problem)
        conn.phx_handshake = (serializer, params, assigns, socket_id)  # type: ignore[attr-defined]
        return None

    async def authorize(self, params: dict[str, Any], connect_info: dict[str, Any]
                        ) -> tuple[dict[str, Any], str | None] | None:
        """Run the ``connect`` and ``socket_id`` hooks: (assigns, socket id), or None if refused.

        A refusal is logged here (params redacted), whoever asked: the handshake, which then
        answers 403, or ``mini_server.channel_test.connect`` (Phoenix.ChannelTest's connect).
        """
        assigns: dict[str, Any] = {}
        if self.connect_hook is not None:
            result = self.connect_hook(params, connect_info)
            if inspect.isawaitable(result):
                result = await result
            if result is None or result is False:
                log.warning("! connect refused for params %r", redact(params))
                return None
            assigns = {} if result is True else dict(result)
        socket_id = self.socket_id_hook(assigns) if self.socket_id_hook else None
        if socket_id is not None and not isinstance(socket_id, str):
            log.error("! socket_id must return a string or None, got %r", socket_id)
            return None
        return assigns, socket_id

    def _select_subprotocol(self, conn: ServerConnection, offered: Any) -> Any:
        # Phoenix answers "phoenix" only with auth_token: true (phoenix.js needs the echo);
        # with default options it names no subprotocol, whatever the client offered.
        return PHOENIX_SUBPROTOCOL if self.auth_token and PHOENIX_SUBPROTOCOL in offered else None

    async def _handle(self, conn: ServerConnection) -> None:
        serializer, params, assigns, socket_id = conn.phx_handshake  # type: ignore[attr-defined]
        if not self.running:
            # The handshake finished just as the server stopped: treat it like the others.
            if self.state is EndpointState.KILLED:
                conn.transport.abort()
            else:
                await conn.close(CloseCode.SERVICE_RESTART, "")
            return
        transport = Transport(self, conn, serializer, params, assigns, socket_id)
        self.transports.add(transport)
        freezer = self.gc_freezer
        if freezer is not None:
            freezer.changed(len(self.transports))
        try:
            await transport.run()
        finally:
            self.transports.discard(transport)
            if freezer is not None and freezer is self.gc_freezer and self.running:
                freezer.changed(len(self.transports))


def parse_params(query: str) -> dict[str, Any]:
    """Query string -> params; ``a[b]=1`` nests one level, as Plug parses it."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        outer, bracket, rest = key.partition("[")
        if bracket and rest.endswith("]") and outer:
            inner = params.setdefault(outer, {})
            if isinstance(inner, dict):
                inner[rest[:-1]] = value
        else:
            params[key] = value
    return params
