"""Four planted bugs for chapter 09's bug hunt, each a one-method change to the real client.

**Spoiler warning.** This docstring names each bug. Chapter 09 asks you to find them from
their symptoms first (the panel, the frame log, the server's ``snapshot()``); read on once you
have, or when you are stuck.

Theory of operation
-------------------
Each variant is the course's real :class:`~.channel.Channel` or :class:`~.socket.Socket` with
one method overridden, so ``inspect.getsource`` shows the whole bug in a few lines, and a fix
is one override too.  Each is modelled on a public bug report against a Phoenix client; the
reports describe Supabase's Python client (its channels speak the Phoenix protocol), and what
is planted here is the same mistake in this course's client, not their code.

``ForgetfulChannel`` (supabase/realtime-py #213, "Auto reconnect loses subscription to
`postgres_changes` events")
    After a reconnect the channel rejoins, the server holds it again and its broadcasts arrive
    on the wire, but the rejoin started from a blank subscription: the ``on()`` bindings are
    gone, so no callback runs.

``EmptyRejoinChannel`` (supabase/realtime-py #258, "Auto-Reconnect is broken when reconnect is
triggered by _listen"; the fix, PR #262, says the rejoin used the default, empty payload
instead of the one of the first join)
    The first join sends its params; every rejoin sends ``{}``.  A channel whose join needs a
    token is refused (``missing``) and retried forever.

``UnregisteringSocket`` (supabase/supabase-py #1311, "Realtime auto-reconnect doesn't work
correctly: it reconnects the websocket but the channel gets CLOSED"; the fix, PR #1346, says
the rejoin unsubscribed first, which removed the channel from the client's list before the
join was sent, so the join's reply was ignored)
    On reconnect the socket forgets the channel, then rejoins it.  The server accepts the join
    and holds the channel; the reply comes back, but the socket routes frames only to the
    channels it knows, so the client never hears it: its channel stays ``joining`` and errors
    on every join timeout.

``StrayHeartbeatSocket`` (phoenixframework/phoenix #4623, "Extra heartbeat is sent after
disconnect resulting in heartbeat timeout and abnormal close"; the report says the timer of
the *next* heartbeat was neither saved nor cleared, only the reply timeout was)
    ``clear_heartbeats`` cancels the reply timeout but not the next heartbeat.  After
    ``disconnect()`` that heartbeat still fires: it is buffered (the socket is closed), nobody
    answers it, its timeout declares the link dead, and the socket reconnects by itself, which
    a deliberate disconnect must never do.
"""

from __future__ import annotations

from .channel import Channel
from .socket import Socket
from .states import ChannelState

__all__ = ["BUGS", "EmptyRejoinChannel", "ForgetfulChannel", "StrayHeartbeatSocket",
           "UnregisteringSocket", "socket_for"]


def socket_for(channel_class: type[Channel], base: type[Socket] = Socket) -> type[Socket]:
    """A Socket class whose ``channel()`` makes ``channel_class`` channels."""
    return type(f"SocketOf{channel_class.__name__}", (base,), {"channel_class": channel_class})


class ForgetfulChannel(Channel):
    """Planted bug 1 (realtime-py #213): a rejoin forgets the channel's ``on()`` bindings."""

    def rejoin(self, timeout: float | None = None) -> None:
        """Join again with a fresh join_ref... starting from a blank subscription."""
        if self.state is ChannelState.ERRORED:
            self._bindings = []  # BUG: "resubscribe from scratch" drops every on() callback
        super().rejoin(timeout)


class EmptyRejoinChannel(Channel):
    """Planted bug 2 (realtime-py #258): every rejoin sends an empty join payload."""

    def rejoin(self, timeout: float | None = None) -> None:
        """Join again with a fresh join_ref... and the default payload."""
        if self.state is ChannelState.ERRORED:
            self.join_push.payload = dict  # BUG: the params of the first join are not reused
        super().rejoin(timeout)


class UnregisteringSocket(Socket):
    """Planted bug 3 (supabase-py #1311): the socket forgets a channel before rejoining it."""

    def rejoin_channel(self, channel: Channel) -> None:
        """Rejoin an errored channel... after "unsubscribing" it."""
        self.remove(channel)  # BUG: unregistered, so the join's reply can no longer reach it
        channel.rejoin()


class StrayHeartbeatSocket(Socket):
    """Planted bug 4 (phoenix #4623): the next heartbeat survives ``disconnect()``."""

    def clear_heartbeats(self) -> None:
        """Stop the heartbeat timers... all but one."""
        if self._heartbeat_timeout_timer is not None:
            self._heartbeat_timeout_timer.cancel()
        self._heartbeat_timeout_timer = None
        # BUG: self._heartbeat_timer (the next heartbeat) is neither cancelled nor forgotten
        self.pending_heartbeat_ref = None


#: name -> (the buggy class, the report it is modelled on)
BUGS: dict[str, tuple[type, str]] = {
    "forgetful": (ForgetfulChannel, "supabase/realtime-py#213"),
    "empty_rejoin": (EmptyRejoinChannel, "supabase/realtime-py#258"),
    "unregistering": (UnregisteringSocket, "supabase/supabase-py#1311"),
    "stray_heartbeat": (StrayHeartbeatSocket, "phoenixframework/phoenix#4623"),
}
