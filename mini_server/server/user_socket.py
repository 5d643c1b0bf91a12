"""The book's UserSocket and WildcardChannel: the code chapter 08's tests are written against.

Theory of operation
-------------------
:func:`token_connect` makes a socket ``connect`` hook as the book's UserSocket has one: the
page hands the client a token signed for a user id (:func:`mini_server.server.token.sign`
with the socket's salt), the client sends it as the ``token`` param, and ``connect``
verifies it.  Accepted: the assigns hold ``user_id`` (and :func:`user_socket_id` names the
socket ``user_socket:ID``).  Refused (missing, invalid: tampered, wrong salt or secret,
nonsense; or expired): the reason is logged at error level with the Phoenix.Token atom
(``connect refused: expired``) and the hook returns None, so the handshake answers 403
and the endpoint logs its own "connect refused" line too.  The token itself never reaches
the log.

:class:`WildcardChannel` serves ``wild:*`` and accepts a topic ``wild:A:B`` only when both
parts are integers and ``B == 2 * A`` (the book's wildcard example: the join decides from
the topic itself).  Any other number of parts is refused with ``{"reason": "wrong
numbers"}``; a part that is not an integer makes ``int()`` raise, so the join *crashes*
(the client gets ``{"reason": "join crashed"}``), as Elixir's ``String.to_integer/1`` does.

:func:`book_routes` adds ``wild:*`` to the demo routes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from mini_server.server.channel import Channel, JoinError, JoinOk, error, ok
from mini_server.server.demo import DEMO_ROUTES
from mini_server.server.token import DEFAULT_MAX_AGE, TokenError, verify
from mini_server.server.token_channel import refusal

SALT = "user socket"
log = logging.getLogger(__name__)


def token_connect(secret_key_base: str, *, salt: str = SALT,
                  max_age: float = DEFAULT_MAX_AGE
                  ) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None]:
    """A ``connect`` hook that accepts a valid ``token`` param and logs why it refuses."""
    def connect(params: dict[str, Any], connect_info: dict[str, Any]) -> dict[str, Any] | None:
        try:
            user_id = verify(secret_key_base, salt, params.get("token"), max_age=max_age)
        except TokenError as exc:
            log.error("! connect refused: %s (%s)", refusal(exc), exc)
            return None
        return {"user_id": user_id}
    return connect


def user_socket_id(assigns: dict[str, Any]) -> str | None:
    """``user_socket:ID`` for a verified user (Phoenix's ``id/1``)."""
    user_id = assigns.get("user_id")
    return None if user_id is None else f"user_socket:{user_id}"


class WildcardChannel(Channel):
    """``wild:A:B`` joins when B is twice A; other shapes are refused, non-numbers crash."""

    async def join(self, topic: str, payload: Any) -> JoinOk | JoinError:
        """The topic decides: its parts after ``wild:`` must be two integers, B == 2 * A."""
        numbers = [int(part) for part in topic.split(":")[1:]]  # ValueError: join crashes
        if len(numbers) == 2 and numbers[1] == 2 * numbers[0]:
            return ok()
        return error({"reason": "wrong numbers"})


def book_routes(base: Mapping[str, type[Channel]] = DEMO_ROUTES) -> dict[str, type[Channel]]:
    """``base`` (the demo routes) plus ``wild:*``."""
    return {**base, "wild:*": WildcardChannel}
