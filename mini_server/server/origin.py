"""``check_origin`` with Phoenix's semantics: pure, no sockets.

Theory of operation
-------------------
A browser sends an ``Origin`` header with every WebSocket handshake; a page on another
site could otherwise drive a learner's local server with the learner's cookies (cross-site
WebSocket hijacking).  Phoenix (``Phoenix.Socket.Transport.check_origin``) decides:

* no ``Origin`` header -> allowed (kernels, node, curl send none), whatever the option;
* ``check_origin=False`` -> every origin allowed;
* ``check_origin=True`` (Phoenix's default) -> the origin's host must equal the endpoint's
  configured host (``url: [host: ...]``, ``"localhost"`` in a new app) exactly: scheme and
  port are ignored and case is not folded, so ``https://localhost:8443`` passes while
  ``http://LOCALHOST``, ``http://127.0.0.1:4000`` and ``null`` are refused;
* a list such as ``["https://example.com", "//another.com:888", "//*.other.com"]`` ->
  allowed when one entry matches: its scheme and port (when it has them; ``https://x``
  implies port 443, as Elixir's ``URI.parse`` does) and its host, where ``*.`` matches the
  host itself and any subdomain.

An origin without a host (``null``, garbage) is refused unless the check is off.  A
refused origin gets HTTP 403 with an empty body, before ``connect`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

CheckOrigin = bool | Sequence[str]

# Elixir's URI.default_port for the schemes an Origin can carry.
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}


class Uri(NamedTuple):
    """Scheme, host and port as Elixir's URI.parse/1 gives them (host case kept)."""

    scheme: str | None
    host: str | None
    port: int | None


def parse_uri(text: str) -> Uri:
    """Split an origin like URI.parse/1: lowercase scheme, host as written, default port."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return Uri(None, None, None)
    scheme = parts.scheme.lower() or None
    netloc = parts.netloc.rpartition("@")[2]
    if netloc.startswith("["):
        host = netloc[1:netloc.find("]")] if "]" in netloc else None
    else:
        host = netloc.partition(":")[0]
    if port is None and scheme is not None:
        port = DEFAULT_PORTS.get(scheme)
    return Uri(scheme, host or None, port)


def parse_allowed(origins: Sequence[str]) -> list[Uri]:
    """The check_origin list as (scheme, host, port) patterns; raises for an entry without host."""
    allowed = []
    for origin in origins:
        uri = parse_uri(origin)
        if not uri.host:
            raise ValueError(f"invalid check_origin entry {origin!r}: expected an origin with a "
                             "host, e.g. 'https://example.com', '//another.com:888', '//*.x.com'")
        allowed.append(uri)
    return allowed


def origin_allowed(origin: str | None, check: CheckOrigin, host: str = "localhost") -> bool:
    """Phoenix's decision for one request's Origin header (None when absent)."""
    if origin is None or check is False:
        return True
    uri = parse_uri(origin)
    if not uri.host:
        return False
    if check is True:
        return uri.host == host
    return any(_matches(uri, pattern) for pattern in parse_allowed(check))


def _matches(uri: Uri, pattern: Uri) -> bool:
    return ((pattern.scheme is None or uri.scheme == pattern.scheme)
            and (pattern.port is None or uri.port == pattern.port)
            and _host_matches(uri.host or "", pattern.host or ""))


def _host_matches(host: str, allowed: str) -> bool:
    if allowed.startswith("*."):
        return host == allowed[2:] or host.endswith(allowed[1:])
    return host == allowed


def parse_check_origin(text: str) -> CheckOrigin:
    """The CLI's ``--check-origin``: ``true``, ``false`` or a comma-separated list."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    origins = [part.strip() for part in text.split(",") if part.strip()]
    parse_allowed(origins)  # refuse a bad entry at startup, as Phoenix does
    return origins
