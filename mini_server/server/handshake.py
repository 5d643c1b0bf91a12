"""The HTTP side of a socket, as Phoenix 1.8 on Bandit answers it: statuses, bodies, closes.

Theory of operation
-------------------
``endpoint.py`` decides *whether* a request upgrades; this module holds *what goes on the
wire* when it does not, and the one place where websockets' defaults differ from Bandit's
once it has:

* :func:`not_found` (404, Phoenix's JSON error body), :func:`forbidden` (403, empty body:
  a refused Origin, subprotocol, vsn or ``connect``), :func:`bad_request` (400, for a
  method other than GET or a request that is not a valid upgrade, with Bandit's wording);
* :func:`upgrade_problem`: Bandit's validation of the upgrade headers, run after Phoenix's
  own checks (so a bad Origin is still 403, not 400);
* :func:`bearer_token`: phoenix.js's ``authToken`` arrives as the subprotocol
  ``base64url.bearer.phx.<base64 without padding>`` (PROTOCOL.md 1.5);
* :class:`PhoenixConnection`: websockets echoes a client's close frame; Bandit answers
  every one (no code, 1000, 1001, 4000, ...) with **1000** and an empty reason, and its
  own closes (1007 invalid UTF-8, 1009 too big) carry no reason either.  The connection's
  ``close_code`` still reports what the *client* sent, for the log.
"""

from __future__ import annotations

import base64
import email.utils
import http
from collections.abc import Iterable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from mini_server.protocol import AUTH_TOKEN_PREFIX
from mini_server.server.log_lines import server_logger

log = server_logger(__name__)
NOT_FOUND_BODY = b'{"errors":{"detail":"Not Found"}}'


def _response(status: int, body: bytes = b"", content_type: str | None = None) -> Response:
    headers = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
                       ("Content-Length", str(len(body)))])
    if content_type is not None:
        headers["Content-Type"] = content_type
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def not_found() -> Response:
    """404 with the JSON body a Phoenix API app renders."""
    return _response(404, NOT_FOUND_BODY, "application/json; charset=utf-8")


def forbidden() -> Response:
    """403 with an empty body, as Phoenix's transport sends for every refusal."""
    return _response(403)


def bad_request(text: str = "") -> Response:
    """400; Bandit words its upgrade errors as plain text with no content type."""
    return _response(400, text.encode())


def _tokens(request: Request, name: str) -> list[str]:
    return [v.strip().lower() for h in request.headers.get_all(name) for v in h.split(",")]


def upgrade_problem(request: Request) -> str | None:
    """What Bandit would say is wrong with this WebSocket upgrade, or None when it is fine."""
    connection = _tokens(request, "Connection")
    if "upgrade" not in connection:
        return f"'connection' header must contain 'upgrade', got {_elixir_list(connection)}"
    upgrade = _tokens(request, "Upgrade")
    if "websocket" not in upgrade:
        return f"'upgrade' header must contain 'websocket', got {_elixir_list(upgrade)}"
    version = _tokens(request, "Sec-WebSocket-Version")
    if version != ["13"]:
        return f"'sec-websocket-version' header must equal '13', got {_elixir_list(version)}"
    key = request.headers.get_all("Sec-WebSocket-Key")
    try:
        valid = len(key) == 1 and len(base64.b64decode(key[0], validate=True)) == 16
    except ValueError:
        valid = False
    if not valid:
        return "'sec-websocket-key' header is absent or invalid"
    return None


def _elixir_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def offered_subprotocols(request: Request) -> list[str]:
    """The Sec-WebSocket-Protocol offers, in order, as written."""
    return [v.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol")
            for v in h.split(",") if v.strip()]


def bearer_token(offered: Iterable[str]) -> str | None:
    """The authToken carried by a ``base64url.bearer.phx.`` subprotocol, decoded."""
    for proto in offered:
        if proto.startswith(AUTH_TOKEN_PREFIX):
            encoded = proto[len(AUTH_TOKEN_PREFIX):]
            try:  # standard alphabet, padding stripped (phoenix.js uses btoa)
                return base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return None
    return None


class _BanditProtocol(ServerProtocol):
    """websockets' server protocol, closing the way Bandit does (1000 '', no reasons)."""

    def send_frame(self, frame: Frame) -> None:
        """Send ``frame``; a close echoing the client's close is always 1000 ''."""
        # Only when echoing: the client's close arrived and none of ours has gone out.
        if (frame.opcode is Opcode.CLOSE and self.state is State.OPEN
                and self.close_rcvd is not None and self.close_sent is None):
            frame = Frame(Opcode.CLOSE, Close(1000, "").serialize())
        super().send_frame(frame)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection with ``code``; the reason is logged, never sent."""
        if reason:
            log.warning("! closing with %d: %s", code, reason)
        super().fail(code, "")


class PhoenixConnection(ServerConnection):
    """websockets' server connection, closing the way Bandit does (1000 '', no reasons)."""

    def __init__(self, protocol: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(protocol, *args, **kwargs)
        # A subclass swapped in (serve() builds the protocol itself) rather than two
        # closures per connection: fewer objects for the garbage collector at 10k sockets.
        if type(protocol) is ServerProtocol:
            protocol.__class__ = _BanditProtocol
