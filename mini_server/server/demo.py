"""The reference channels: what ``python -m mini_server`` and the chapters serve.

Theory of operation
-------------------
``../shared/REFERENCE_CHANNELS.md`` is one contract implemented twice: here, and by a
minimal real Phoenix 1.8.12 app whose answers are recorded in ``../shared/fidelity``
(``tests/fidelity`` replays them against this module).  Each callback mirrors one Elixir
clause; where Elixir would find no clause (a ``new_msg`` without ``"body"``, an event the
channel does not know, ``ticks`` without ``count``) the callback raises, so the channel
crashes exactly where Phoenix's does and the client sees ``phx_error``.

* :func:`reference_connect` / :func:`reference_socket_id`: ``token=bad`` is refused (HTTP
  403, checked first); ``user_id=ID`` names the socket ``users_socket:ID``.
* :class:`RoomChannel` (``room:*``), the chat room of the Phoenix guides: join refuses
  ``{"reject": true}`` with ``{"reason": "unauthorized"}``; ``new_msg {"body": X}``
  broadcasts ``new_msg {"body": X}`` to every subscriber, the sender included, then
  replies ok ``{}`` (the sender sees the broadcast first); ``ping P`` replies ok ``P``.
* :class:`LabChannel` (``lab:*``): every channel behaviour PROTOCOL.md section 10 needs,
  one event each (the table in REFERENCE_CHANNELS.md).

Topics without a route get "unmatched topic" from the transport.
"""

from __future__ import annotations

from typing import Any

from mini_server.redaction import redact
from mini_server.server.channel import (
    Channel,
    JoinError,
    JoinOk,
    NoReply,
    ReplyResult,
    Stop,
    error,
    noreply,
    ok,
    reply,
    stop,
)
from mini_server.server.log_lines import Clip


def reference_connect(params: dict[str, Any], connect_info: dict[str, Any]) -> dict | None:
    """The reference socket's connect: ``token=bad`` refuses, ``user_id`` is assigned."""
    if params.get("token") == "bad":
        return None
    return {"user_id": params.get("user_id")}


def reference_socket_id(assigns: dict[str, Any]) -> str | None:
    """``users_socket:ID`` for a socket that connected with ``user_id=ID``, else None."""
    user_id = assigns.get("user_id")
    return None if user_id is None else f"users_socket:{user_id}"


def _is_join_flag(payload: Any, key: str) -> bool:
    return isinstance(payload, dict) and payload.get(key) is True


class RoomChannel(Channel):
    """A chat room: join, new_msg broadcast, ping echo; anything else crashes it."""

    async def join(self, topic: str, payload: Any) -> JoinOk | JoinError:
        """Accept any payload except ``{"reject": true}``."""
        if _is_join_flag(payload, "reject"):
            return error({"reason": "unauthorized"})
        return ok()

    async def handle_in(self, event: str, payload: Any) -> ReplyResult:
        """new_msg broadcasts its body; ping echoes its payload."""
        if event == "new_msg" and isinstance(payload, dict) and "body" in payload:
            await self.broadcast("new_msg", {"body": payload["body"]})
            return reply("ok", {})
        if event == "ping":
            return reply("ok", payload)
        raise ValueError(f"room channel has no clause for {Clip(event)!r} "
                         f"with {Clip(redact(payload))!r}")


def _access(payload: Any, key: str) -> Any:
    # Elixir's P["key"]: a map gives its value or nil, nil gives nil, anything else raises.
    if payload is None:
        return None
    if not isinstance(payload, dict):
        raise TypeError(f"cannot read {key!r} from {Clip(redact(payload))!r}")
    return payload.get(key)


class LabChannel(Channel):
    """Every behaviour of PROTOCOL.md section 10, one event each (REFERENCE_CHANNELS.md)."""

    intercept = ("filtered",)

    async def join(self, topic: str, payload: Any) -> JoinOk | JoinError:
        """Crash, refuse, or accept and push ``welcome`` right after the join reply."""
        if _is_join_flag(payload, "crash"):
            raise RuntimeError("join asked to crash")
        if _is_join_flag(payload, "reject"):
            return error({"reason": "unauthorized"})
        self.assigns["name"] = _access(payload, "name")
        self.send_info(("after_join",))
        return ok({"joined": topic})

    async def handle_in(self, event: str, payload: Any) -> ReplyResult | NoReply | Stop:
        """One clause per event of the reference table; no clause -> crash."""
        simple = {"ping": lambda: reply("ok", payload),
                  "error_reply": lambda: reply("error", payload),
                  "noreply": noreply, "stop": lambda: stop("normal"),
                  "stop_reply": lambda: stop("normal", reply=("ok", payload)),
                  "stop_shutdown": lambda: stop("shutdown")}
        if isinstance(event, str) and event in simple:
            return simple[event]()
        if event == "push_me":
            await self.push("pushed", payload)
            return reply("ok", {})
        if event in ("shout", "shout_from"):
            send = self.broadcast if event == "shout" else self.broadcast_from
            await send("shout", payload)
            return noreply()
        if event == "filtered":
            await self.broadcast("filtered", payload)
            return reply("ok", {})
        if event == "async_reply":
            later = ("async_reply", self.socket_ref(), payload)
            self.send_after(0.05, later)
            return noreply()
        if event == "ticks" and isinstance(payload, dict) and {"count", "ms"} <= set(payload):
            self._tick_later(1, payload["count"], payload["ms"])
            return reply("ok", {})
        if isinstance(payload, bytes) and event in ("binary_echo", "push_binary",
                                                    "broadcast_binary"):
            return await self._binary(event, payload)
        if event == "disconnect_me":
            # "users_socket:" <> nil raises in Elixir: an anonymous socket crashes the channel.
            await self.endpoint_broadcast("users_socket:" + self.assigns["user_id"],
                                          "disconnect", {})
            return reply("ok", {})
        if event == "crash":
            raise RuntimeError("boom")
        raise ValueError(f"lab channel has no clause for {Clip(event)!r} "
                         f"with {Clip(redact(payload))!r}")

    async def _binary(self, event: str, data: bytes) -> ReplyResult:
        if event == "binary_echo":
            return reply("ok", data)
        if event == "push_binary":
            await self.push("bin", data)
        else:
            await self.broadcast("bin", data)
        return reply("ok", {})

    def _tick_later(self, n: int, count: int, ms: Any) -> None:
        if n <= count:  # Process.send_after: each tick schedules the next one
            self.send_after(ms / 1000, ("tick", n, count, ms))

    async def handle_info(self, msg: Any) -> NoReply:
        """The after-join push, asynchronous replies and ticks."""
        if msg[0] == "after_join":
            await self.push("welcome", {"topic": self.topic})
        elif msg[0] == "async_reply":
            await self.reply(msg[1], "ok", msg[2])
        elif msg[0] == "tick":
            _, n, count, ms = msg
            await self.push("tick", {"n": n})
            self._tick_later(n + 1, count, ms)
        return noreply()

    async def handle_out(self, event: str, payload: Any) -> NoReply:
        """Push ``filtered`` only to the subscriber it names (or to all when it names none)."""
        to = _access(payload, "to")
        if to is None or to == self.assigns["name"]:
            await self.push(event, payload)
        return noreply()


DEMO_ROUTES: dict[str, type[Channel]] = {"room:*": RoomChannel, "lab:*": LabChannel}
