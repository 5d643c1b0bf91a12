"""``token:*``: a recurring server push that hands the client a fresh signed token every N s.

Theory of operation
-------------------
A client joins with ``{"token": T}``, a token made by :func:`mini_server.server.token.sign`
(the Phoenix.Token idea) with this channel's secret and salt.  Tokens expire (``max_age``),
so a client that stays connected for hours would rejoin with a dead token after its next
outage.  The channel keeps it supplied instead:

1. ``join`` verifies T (missing, invalid and expired tokens are refused with ``{"reason":
   "missing" | "invalid" | "expired"}``, Phoenix.Token's error atoms), keeps the user it
   names in ``assigns["user_id"]``, queues one push for right after the join reply
   (``send_info``, Phoenix's ``send(self(), :after_join)``) and starts a recurring timer
   (``send_interval``, Erlang's ``:timer.send_interval``) that queues the same message every
   ``interval`` seconds.
2. ``handle_info`` signs a new token for that user and pushes ``new_token {"token": ...,
   "n": k}`` (k counts this channel's pushes, kept in its assigns).
3. The timer belongs to the channel process: leave, a closed connection, a crash or a killed
   server end it, and nothing keeps signing for a client that is gone (the endpoint's
   ``snapshot()["timers"]`` shows it).  ``terminate`` is not needed for that, and is not
   called after a crash anyway.

The client's part (``mini_server.client.tokens.NewestToken``): remember the newest token and
give the channel a params *function* that returns it, so the rejoin after an outage sends a
live token (chapter 03's rotated-token pitfall).  A client whose params are a dict captured
at the first join keeps sending the first token and is refused with ``expired`` once it is
older than ``max_age``.

Events (``handle_in``): ``status`` replies ``{"user_id": ..., "pushed": k}`` from this
channel's own assigns; anything else crashes the channel, as a missing Phoenix clause does.
:func:`token_channel` binds the class to a secret and timings; :func:`token_routes` adds it
to the demo routes as ``token:*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from mini_server.server.channel import (
    Channel,
    JoinError,
    JoinOk,
    NoReply,
    ReplyResult,
    error,
    noreply,
    ok,
    reply,
)
from mini_server.server.demo import DEMO_ROUTES
from mini_server.server.token import TokenError, TokenExpired, TokenMissing, sign, verify

NEW_TOKEN = "new_token"
SALT = "channel token"
TOPIC_PATTERN = "token:*"
REFRESH = ("push_token",)


def refusal(exc: TokenError) -> str:
    """Phoenix.Token's error atom for a failed verify: missing, expired or invalid."""
    if isinstance(exc, TokenMissing):
        return "missing"
    if isinstance(exc, TokenExpired):
        return "expired"
    return "invalid"


class TokenChannel(Channel):
    """Verifies the join token, then pushes a freshly signed one every ``interval`` seconds."""

    secret_key_base: ClassVar[str]
    salt: ClassVar[str] = SALT
    interval: ClassVar[float] = 5.0  # seconds between pushes
    max_age: ClassVar[float] = 15.0  # seconds a token stays valid: a few intervals

    async def join(self, topic: str, payload: Any) -> JoinOk | JoinError:
        """Accept a valid token; push a new one right after the reply and every interval."""
        token = payload.get("token") if isinstance(payload, dict) else None
        try:
            user_id = verify(self.secret_key_base, self.salt, token, self.max_age)
        except TokenError as exc:
            return error({"reason": refusal(exc)})
        self.assigns["user_id"] = user_id
        self.assigns["pushed"] = 0
        self.send_info(REFRESH)  # the first fresh token, right after the join reply
        self.send_interval(self.interval, REFRESH)  # ends with this channel, however it ends
        return ok({"user_id": user_id})

    def new_token(self) -> str:
        """A token for this channel's user, valid for ``max_age`` seconds from now."""
        return sign(self.secret_key_base, self.salt, self.assigns["user_id"],
                    max_age=self.max_age)

    async def handle_info(self, msg: Any) -> NoReply:
        """Push a freshly signed token."""
        if msg == REFRESH:
            self.assigns["pushed"] += 1
            await self.push(NEW_TOKEN, {"token": self.new_token(), "n": self.assigns["pushed"]})
        return noreply()

    async def handle_in(self, event: str, payload: Any) -> ReplyResult:
        """``status``: this channel's user and how many tokens it pushed; else crash."""
        if event == "status":
            return reply("ok", {"user_id": self.assigns["user_id"],
                                "pushed": self.assigns["pushed"]})
        raise ValueError(f"token channel has no clause for {event!r} with {payload!r}")


def token_channel(secret_key_base: str, *, interval: float = 5.0,
                  max_age: float | None = None, salt: str = SALT) -> type[TokenChannel]:
    """A TokenChannel class bound to a secret; ``max_age`` defaults to three intervals."""
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    max_age = 3 * interval if max_age is None else max_age
    return type("BoundTokenChannel", (TokenChannel,),
                {"secret_key_base": secret_key_base, "interval": interval,
                 "max_age": max_age, "salt": salt})


def token_routes(secret_key_base: str, *, base: Mapping[str, type[Channel]] = DEMO_ROUTES,
                 **options: Any) -> dict[str, type[Channel]]:
    """``base`` (the demo routes) plus ``token:*`` bound to ``secret_key_base``."""
    return {**base, TOPIC_PATTERN: token_channel(secret_key_base, **options)}
