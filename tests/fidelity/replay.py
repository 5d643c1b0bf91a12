"""Replay a golden scenario against a server and record the same kind of transcript.

Theory of operation
-------------------
``../shared/fidelity/README.md`` is the specification; this module follows it step by
step.  Each named connection (``A``, ``B``, ...) is a websockets client that sends nothing
the steps do not say: no keepalive pings (``ping_interval=None``), no compression unless
the step offers it, no frame size limit (``max_size=None``), no ``Origin`` unless the step
gives one.  One reader task per connection timestamps every frame as it arrives and queues
it, so a frame that arrives while no ``recv`` step reads stays buffered with its true
arrival time (``min_delay_ms`` is checked against it, never against when it was read).
``http`` steps use a raw TCP socket.  Every wait is bounded by the step's own timeout.

The transcript is a list of event dicts in observation order, each with ``step`` and
``conn``, ready for :mod:`verdicts` to compare with the golden one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

LONG_TEXT = 2000  # characters; longer text frames are recorded by hash
CLOSED = object()  # the reader's end-of-connection marker


def canonical(text: str) -> str | None:
    """The canonical JSON of a text frame (sorted keys, no spaces), or None if not JSON."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def text_event(text: str) -> dict[str, Any]:
    """A text frame as the transcript records it (by hash when longer than 2000 chars)."""
    canon = canonical(text)
    if len(text) <= LONG_TEXT:
        return {"type": "text", "text": text, "canon": canon}
    return {"type": "text", "length": len(text),
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "canon_sha256": None if canon is None else hashlib.sha256(canon.encode()).hexdigest(),
            "head": None if canon is None else canon[:80]}


def body_text(data: bytes) -> str:
    """The first 200 bytes of an HTTP body, invalid UTF-8 written as \\xNN."""
    return data[:200].decode("utf-8", errors="backslashreplace")


@dataclass
class Conn:
    """One named connection of a scenario."""

    ws: ClientConnection | None = None
    opened_at: float = 0.0
    last_send: float = 0.0
    closed: bool = False  # known closed: later steps record nothing
    frames: asyncio.Queue[tuple[float, Any]] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        """Queue every frame with its arrival time, then the close marker."""
        assert self.ws is not None
        loop = asyncio.get_running_loop()
        try:
            async for data in self.ws:
                self.frames.put_nowait((loop.time(), data))
        except ConnectionClosed:
            pass
        finally:
            self.frames.put_nowait((loop.time(), CLOSED))

    def close_event(self) -> dict[str, Any]:
        """What the server's close looked like from here."""
        assert self.ws is not None
        rcvd = self.ws.protocol.close_rcvd
        if rcvd is None:
            return {"type": "close", "code": 1006, "reason": "", "close_frame": False}
        return {"type": "close", "code": None if rcvd.code == 1005 else rcvd.code,
                "reason": rcvd.reason, "close_frame": True}


class Replay:
    """Runs one scenario's steps against ``host:port`` and collects its transcript."""

    def __init__(self, scenario: dict[str, Any], host: str, port: int) -> None:
        self.scenario, self.host, self.port = scenario, host, port
        self.conns: dict[str, Conn] = {}
        self.events: list[dict[str, Any]] = []
        self._step = 0

    def _emit(self, conn: str, event: dict[str, Any]) -> None:
        self.events.append({"step": self._step, "conn": conn, **event})

    def _subst(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("${PORT}", str(self.port))
        if isinstance(value, dict):
            return {k: self._subst(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._subst(v) for v in value]
        return value

    async def run(self) -> list[dict[str, Any]]:
        """Execute every step in order; close what is left; return the transcript."""
        try:
            for index, step in enumerate(self.scenario["steps"]):
                self._step = index
                step = self._subst(step)
                await getattr(self, "_op_" + step["op"])(step)
        finally:
            await self._close_all()
        return self.events

    async def _close_all(self) -> None:
        for conn in self.conns.values():
            if conn.ws is not None:
                conn.ws.transport.abort()  # not recorded; no need for a handshake
            if conn.reader is not None:
                conn.reader.cancel()
        await asyncio.gather(*(c.reader for c in self.conns.values() if c.reader),
                             return_exceptions=True)

    def _live(self, name: str) -> Conn | None:
        """The connection if it opened and is not known to be closed, else None."""
        conn = self.conns.get(name)
        return None if conn is None or conn.ws is None or conn.closed else conn

    # --- steps ---------------------------------------------------------------------------

    async def _op_connect(self, step: dict[str, Any]) -> None:
        name = step["conn"]
        conn = self.conns[name] = Conn()
        url = f"ws://{self.host}:{self.port}{step['path']}{step['query']}"
        headers = step.get("headers", {})
        loop = asyncio.get_running_loop()
        try:
            ws = await connect(
                url, origin=headers.get("Origin"),
                additional_headers={k: v for k, v in headers.items() if k != "Origin"},
                subprotocols=step.get("subprotocols"),
                compression="deflate" if step.get("compression") else None,
                ping_interval=None, max_size=None, max_queue=None, open_timeout=20,
                close_timeout=5, proxy=None)
        except InvalidStatus as exc:
            response = exc.response
            conn.closed = True
            self._emit(name, {"type": "http_error", "status": response.status_code,
                              "content_type": response.headers.get("content-type", ""),
                              "body": body_text(response.body or b"")})
            return
        except InvalidHandshake as exc:
            conn.closed = True
            self._emit(name, {"type": "handshake_failed", "detail": str(exc)})
            return
        except (OSError, TimeoutError) as exc:
            conn.closed = True
            self._emit(name, {"type": "connect_failed", "detail": str(exc)})
            return
        conn.ws, conn.opened_at = ws, loop.time()
        conn.reader = asyncio.create_task(conn.read(), name=f"replay reader {name}")
        self._emit(name, {"type": "open",
                          "extensions": ws.response.headers.get("Sec-WebSocket-Extensions"),
                          "subprotocol": ws.response.headers.get("Sec-WebSocket-Protocol")})

    async def _op_send(self, step: dict[str, Any]) -> None:
        name = step["conn"]
        conn = self._live(name)
        if conn is None:
            self._emit(name, {"type": "not_sent"})
            return
        conn.last_send = asyncio.get_running_loop().time()
        try:
            if "text" in step:
                text = step["text"]
                if "repeat" in step:
                    rep = step["repeat"]
                    text = text.replace(rep["marker"], rep["unit"] * rep["count"])
                await conn.ws.send(text)
            elif "binary_hex" in step:
                await conn.ws.send(bytes.fromhex(step["binary_hex"]))
            elif "text_bytes_hex" in step:
                await conn.ws.send(bytes.fromhex(step["text_bytes_hex"]), text=True)
            else:
                await self._send_fragments(conn.ws, step["fragments"])
        except ConnectionClosed:
            await self._wait_reader(conn, 5.0)
            conn.closed = True
            self._emit(name, conn.close_event())

    @staticmethod
    async def _send_fragments(ws: ClientConnection, parts: list[str]) -> None:
        # One frame per string (ws.send(iterable) would add an empty final frame).
        async with ws.send_context():
            for i, part in enumerate(parts):
                data, fin = part.encode(), i == len(parts) - 1
                if i == 0:
                    ws.protocol.send_text(data, fin=fin)
                else:
                    ws.protocol.send_continuation(data, fin=fin)

    async def _op_recv(self, step: dict[str, Any]) -> None:
        name = step["conn"]
        conn = self._live(name)
        if conn is None:
            return
        loop = asyncio.get_running_loop()
        start = last = loop.time()
        deadline = start + step["timeout_ms"] / 1000
        quiet, count = step["quiet_ms"] / 1000, step.get("count")
        min_delays = step.get("min_delay_ms", [])
        got = 0
        while True:
            until = deadline if count is not None and got < count else min(deadline, last + quiet)
            try:
                async with asyncio.timeout(max(0.0, until - loop.time())):
                    arrived, data = await conn.frames.get()
            except TimeoutError:
                return
            if data is CLOSED:
                conn.closed = True
                self._emit(name, conn.close_event())
                return
            got, last = got + 1, loop.time()
            self._emit(name, text_event(data) if isinstance(data, str) else
                       {"type": "binary", "hex": bytes(data).hex(), "decoded": None})
            if got <= len(min_delays):
                after_ms = (arrived - conn.last_send) * 1000
                if after_ms < min_delays[got - 1]:
                    self._emit(name, {"type": "too_early", "frame": got,
                                      "min_ms": min_delays[got - 1], "after_ms": round(after_ms)})

    async def _op_sleep(self, step: dict[str, Any]) -> None:
        await asyncio.sleep(step["ms"] / 1000)  # the scenario's own pause, not a sync

    async def _op_close(self, step: dict[str, Any]) -> None:
        name = step["conn"]
        conn = self._live(name)
        if conn is None:
            return
        ws = conn.ws
        try:
            async with asyncio.timeout(5):
                await ws.close(step["code"], step["reason"])  # code None: empty close frame
        except TimeoutError:
            pass
        await self._wait_reader(conn, 1.0)
        conn.closed = True
        rcvd = ws.protocol.close_rcvd
        if rcvd is None:
            self._emit(name, {"type": "server_close_frame", "present": False})
        else:
            self._emit(name, {"type": "server_close_frame", "present": True,
                              "code": None if rcvd.code == 1005 else rcvd.code,
                              "reason": rcvd.reason})

    async def _op_ping(self, step: dict[str, Any]) -> None:
        name = step["conn"]
        conn = self._live(name)
        if conn is None:
            return
        try:
            waiter = await conn.ws.ping(bytes.fromhex(step["data_hex"]))
            async with asyncio.timeout(step["timeout_ms"] / 1000):
                await waiter
            self._emit(name, {"type": "pong"})
        except (TimeoutError, ConnectionClosed):
            self._emit(name, {"type": "no_pong"})

    async def _op_await_close(self, step: dict[str, Any]) -> None:
        name = step["conn"]
        conn = self._live(name)
        if conn is None:
            return
        loop = asyncio.get_running_loop()
        remaining = conn.opened_at + step["timeout_ms"] / 1000 - loop.time()
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                while (await conn.frames.get())[1] is not CLOSED:
                    pass  # a frame in this window would be a surprise; the close is the point
        except TimeoutError:
            self._emit(name, {"type": "still_open"})
            return
        conn.closed = True
        self._emit(name, conn.close_event())
        elapsed = loop.time() - conn.opened_at
        about = int(math.floor(elapsed / 5 + 0.5) * 5)  # to the nearest 5 s, halves up
        self._emit(name, {"type": "closed_after", "about_s": about})

    async def _op_http(self, step: dict[str, Any]) -> None:
        name = step["conn"]
        request = step["request"].replace("\n", "\r\n").encode()
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            self._emit(name, {"type": "http_no_answer"})
            return
        try:
            writer.write(request)
            await writer.drain()
            data = await self._read_http(reader)
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2) if lines and lines[0] else []
        if len(parts) < 2 or not parts[1].isdigit():
            self._emit(name, {"type": "http_no_answer"})
            return
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:])}
        self._emit(name, {"type": "http_response", "status": int(parts[1]),
                          "reason_phrase": parts[2] if len(parts) > 2 else "",
                          "content_type": headers.get("content-type", ""),
                          "body": body_text(body)})

    @staticmethod
    async def _read_http(reader: asyncio.StreamReader) -> bytes:
        """The response up to its Content-Length, or whatever came within 5 s."""
        data = b""
        try:
            async with asyncio.timeout(5):
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    data += chunk
                    head, sep, body = data.partition(b"\r\n\r\n")
                    if sep:
                        for line in head.split(b"\r\n")[1:]:
                            key, _, value = line.partition(b":")
                            if key.strip().lower() == b"content-length" and \
                                    len(body) >= int(value.strip() or 0):
                                return data
        except TimeoutError:
            pass
        return data

    @staticmethod
    async def _wait_reader(conn: Conn, within: float) -> None:
        if conn.reader is not None:
            await asyncio.wait({conn.reader}, timeout=within)
