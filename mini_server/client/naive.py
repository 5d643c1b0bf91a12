"""A deliberately naive client: it reconnects the socket but never rejoins its channels.

Theory of operation
-------------------
**This client is wrong on purpose.**  Chapter 03 runs it next to the real one to show why a
channel is not a local object: it is a process on the server, bound to one connection.

NaiveSocket is the real :class:`~.socket.Socket` with two hooks overridden:

* ``trigger_chan_error`` does nothing, so when the connection drops (server restart, network
  cut, heartbeat timeout) its channels are never told: they stay ``joined``;
* ``rejoin_channel`` does nothing, so even a channel that did error is never joined again.

The socket still reconnects on the phoenix.js schedule, so after a server restart the server
shows **1 socket and 0 channels**, while the client still believes it is joined.  Its pushes go
out with a join_ref the new server never saw, and the server answers each with
``{"status": "error", "response": {"reason": "unmatched topic"}}``.  Broadcasts to the topic never
arrive, because nothing subscribed to it on the server.  The fix is what the real Socket does:
error every channel on close and rejoin each errored channel, with a new join_ref, on open.
"""

from __future__ import annotations

from .channel import Channel
from .socket import Socket

__all__ = ["NaiveSocket"]


class NaiveSocket(Socket):
    """Reconnects, never rejoins (wrong on purpose; see the module docstring)."""

    def trigger_chan_error(self, reason: str, connection=None) -> None:
        """Naive: the channels are not told that the connection they lived on is gone."""
        self.events.emit("=", "naive", f"naive client: channels not errored ({reason}), "
                         "they still think they are joined", reason=reason)

    def rejoin_channel(self, channel: Channel) -> None:
        """Naive: never join again."""
        self.events.emit("=", "naive", f"naive client: not rejoining {channel.topic}",
                         topic=channel.topic)
