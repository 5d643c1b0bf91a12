"""The client's half of a token refresh: always rejoin with the newest token the server pushed.

Theory of operation
-------------------
A server channel such as ``token:*`` (``mini_server/server/token_channel.py``) pushes
``new_token {"token": T}`` every few seconds; each token expires after ``max_age``.  The join
params are sent again on every rejoin, so they must be a *function* (phoenix.js calls
``params()`` for every join and rejoin, and so does this client): :class:`NewestToken`
remembers the last token pushed and :meth:`NewestToken.params` returns it.  A dict captured
at the first join would keep sending the first token, which the server refuses as
``expired`` once it is older than ``max_age`` (chapter 03's rotated-token pitfall).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["NewestToken"]


class NewestToken:
    """The newest token pushed on a channel; ``params`` sends it on every (re)join."""

    def __init__(self, token: str, key: str = "token") -> None:
        self.token, self.key = token, key
        self.received = 0  # tokens pushed by the server so far
        self.params_calls = 0

    def __repr__(self) -> str:
        return (f"<NewestToken received={self.received} params_calls={self.params_calls} "
                f"token={self.token[:16]}...>")

    def params(self) -> dict[str, str]:
        """The join payload: called by the channel on every join and rejoin."""
        self.params_calls += 1
        return {self.key: self.token}

    def see(self, payload: Any) -> None:
        """Keep the token of one ``new_token`` push."""
        self.token = payload[self.key]
        self.received += 1

    def follow(self, channel: Channel, event: str = "new_token") -> int:
        """Bind ``see`` to ``event`` on ``channel``; returns the binding ref."""
        return channel.on(event, self.see)
