"""Client-side delivery helpers: catching up with last_seen_id, and pushing until acked.

Theory of operation
-------------------
Phoenix Channels deliver **at most once**: a broadcast is sent to whoever is subscribed at
that moment, a push is sent once and either replied to or timed out.  Two small tools turn
that into something stronger, each needing the server's help:

* :class:`LastSeen` remembers the newest message id the client has seen.  Its
  :meth:`~LastSeen.params` is meant as a channel's params *function*
  (``sock.channel(topic, params=seen.params)``), which the client calls on every join and
  rejoin, so a rejoin asks for exactly what was missed (``{"last_seen_id": N}``).  It also
  counts what it saw: ids, replayed ones, duplicates (an id not above the last), gaps.
* :func:`push_until_acked` is **at-least-once**: it gives the message an id the client made
  (``client_id``, a UUID), pushes it and, when no reply comes within the timeout, pushes the
  *same* message again, until one is acknowledged.  A reply lost on the way back makes the
  server see the message twice, so the handler must be idempotent (``history.py``: a UNIQUE
  client id); then "at least once" plus "applied once" is "effectively once".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .push import PushTimeout, Reply

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["Acked", "LastSeen", "push_until_acked"]


class LastSeen:
    """The newest message id seen on a channel; ``params`` sends it on every (re)join."""

    def __init__(self, last_id: int = 0) -> None:
        self.last_id = last_id
        self.ids: list[int] = []  # every new id, in arrival order
        self.replayed = 0
        self.duplicates = 0
        self.params_calls = 0

    def __repr__(self) -> str:
        return (
            f"<LastSeen last_id={self.last_id} seen={len(self.ids)} "
            f"replayed={self.replayed} duplicates={self.duplicates}>"
        )

    def params(self) -> dict[str, int]:
        """The join payload: called by the channel on every join and rejoin."""
        self.params_calls += 1
        return {"last_seen_id": self.last_id}

    def see(self, payload: Any) -> None:
        """Note one ``new_msg`` payload (``{"id": ..., "body": ..., "replayed"?: true}``)."""
        message_id = payload["id"]
        if message_id <= self.last_id:
            self.duplicates += 1
            return
        self.ids.append(message_id)
        self.last_id = message_id
        if payload.get("replayed"):
            self.replayed += 1

    def follow(self, channel: Channel, event: str = "new_msg") -> int:
        """Bind ``see`` to ``event`` on ``channel``; returns the binding ref."""
        return channel.on(event, self.see)

    def missing(self, expected: list[int] | range) -> list[int]:
        """Ids in ``expected`` that never arrived."""
        seen = set(self.ids)
        return [i for i in expected if i not in seen]


@dataclass(frozen=True, slots=True)
class Acked:
    """A push that was acknowledged: the reply, the message id used, and how many tries."""

    reply: Reply
    client_id: str
    attempts: int


async def push_until_acked(
    channel: Channel,
    event: str,
    payload: dict[str, Any],
    *,
    client_id: str | None = None,
    attempts: int = 5,
    timeout: float | None = None,  # noqa: ASYNC109 (per push, as channel.push has it)
) -> Acked:
    """Push ``payload`` plus ``"client_id"`` until a reply arrives; retries reuse the id."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    client_id = client_id or uuid.uuid4().hex
    message = {**payload, "client_id": client_id}
    for attempt in range(1, attempts + 1):
        try:
            # Each Push carries its own timeout, so this await is bounded; a push made while
            # offline waits in the channel's buffer and is dropped when that timeout passes.
            reply = await channel.push(event, message, timeout=timeout)
        except PushTimeout:
            channel.socket.events.emit(
                "-",
                "push_retry",
                f"{channel.topic} {event} {client_id[:8]} not acked (try {attempt} of {attempts})",
                topic=channel.topic,
                event=event,
                client_id=client_id,
                attempt=attempt,
            )
            continue
        return Acked(reply, client_id, attempt)
    raise PushTimeout(channel.topic, event, (timeout or channel.timeout) * attempts)
