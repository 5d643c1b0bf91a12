"""The book's UserSocket (token connect) and WildcardChannel, tested with channel_test."""

from __future__ import annotations

import logging

import pytest

from mini_server.channel_test import connect
from mini_server.fake_clock import run_virtual
from mini_server.server import Endpoint
from mini_server.server.token import sign
from mini_server.server.user_socket import (
    SALT,
    book_routes,
    token_connect,
    user_socket_id,
)

SECRET = "a secret key base of at least twenty bytes"


def endpoint() -> Endpoint:
    """The book's socket on an endpoint that is never started."""
    return Endpoint(book_routes(), connect=token_connect(SECRET, max_age=60),
                    socket_id=user_socket_id)


@pytest.mark.parametrize(("params", "reason"), [
    ({"token": sign(SECRET, "other salt", 1)}, "invalid"),
    ({"token": sign(SECRET, SALT, 1, now=0)}, "expired"),
    ({}, "missing"),
    ({"token": "nonsense"}, "invalid"),
])
def test_a_refused_token_is_none_and_its_reason_logged(params, reason, caplog):
    """Wrong salt, expired, missing, nonsense: refused, the Phoenix.Token reason logged."""
    async def main() -> None:
        assert await connect(endpoint(), params) is None
    with caplog.at_level(logging.ERROR, logger="mini_server.server.user_socket"):
        run_virtual(main)
    assert f"connect refused: {reason}" in caplog.text
    if "token" in params:
        assert params["token"] not in caplog.text, "the token itself must not be logged"


def test_a_valid_token_assigns_the_user_and_names_the_socket():
    """The token's user id lands in assigns; the socket id follows it."""
    async def main() -> None:
        async with await connect(endpoint(), {"token": sign(SECRET, SALT, 7)}) as sock:
            assert sock.assigns == {"user_id": 7}
            assert sock.socket_id == "user_socket:7"
    run_virtual(main)


@pytest.mark.parametrize(("topic", "status", "reply"), [
    ("wild:1:2", "ok", {}),
    ("wild:20:40", "ok", {}),
    ("wild:1:3", "error", {"reason": "wrong numbers"}),
    ("wild:2:1", "error", {"reason": "wrong numbers"}),
    ("wild:2:4:8", "error", {"reason": "wrong numbers"}),
    ("wild:2", "error", {"reason": "wrong numbers"}),
    ("wild:a:b", "error", {"reason": "join crashed"}),
])
def test_wildcard_joins_only_when_b_is_twice_a(topic, status, reply):
    """B == 2A joins; other pairs and other lengths are refused; non-numbers crash the join."""
    async def main() -> None:
        async with await connect(Endpoint(book_routes())) as sock:
            got_status, got_reply, _ = await sock.join(topic)
            assert (got_status, got_reply) == (status, reply)
    run_virtual(main)
