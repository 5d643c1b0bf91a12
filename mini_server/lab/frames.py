"""Count WebSocket frames in a raw TCP byte stream by reading their headers only.

Theory of operation
-------------------
A WebSocket connection starts as HTTP: the request (client side) or the ``101 Switching
Protocols`` response (server side) ends with an empty line.  After it, the stream is a
sequence of frames (RFC 6455 section 5.2), each a 2 to 14 byte header then the payload:

* byte 0: FIN and the opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong, 0 continuation);
* byte 1: MASK bit and a 7-bit length; 126 means a 16-bit length follows, 127 a 64-bit one;
* then the 4-byte masking key if MASK is set (every client-to-server frame).

:class:`FrameCounter` keeps just enough state to resume mid-header when a chunk ends
anywhere, counts each header once complete, and skips the payload without looking at it.
If the server answers something other than 101 (a 403, say), the rest is an HTTP body and
nothing more is counted as a frame.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

OPCODES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


@dataclass
class Traffic:
    """What went through the proxy in one direction, summed over every connection."""

    bytes: int = 0
    frames: int = 0
    by_opcode: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict for printing and panels."""
        return {"bytes": self.bytes, "frames": self.frames, "by_opcode": dict(self.by_opcode)}


class FrameCounter:
    """Counts WebSocket frames in one direction of one TCP stream, header by header."""

    def __init__(self, totals: Traffic) -> None:
        self.totals = totals
        self._in_http = True  # the stream starts with the HTTP upgrade request or response
        self._opaque = False  # the upgrade failed: what follows is an HTTP body, not frames
        self._head = b""
        self._header = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> None:
        """Account for ``data`` delivered on the stream."""
        self.totals.bytes += len(data)
        i = 0
        if self._in_http:
            buf = self._head + data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._head = buf[-4096:]
                return
            status = buf.split(b"\r\n", 1)[0]
            self._opaque = status.startswith(b"HTTP/") and b" 101 " not in status + b" "
            self._in_http = False
            i = end + 4 - len(self._head)
            self._head = b""
        if self._opaque:
            return
        n = len(data)
        while i < n:
            if self._skip:
                step = min(self._skip, n - i)
                self._skip -= step
                i += step
                continue
            self._header.append(data[i])
            i += 1
            size = self._header_size()
            if size is not None and len(self._header) == size:
                self._count_frame()

    def _header_size(self) -> int | None:
        if len(self._header) < 2:
            return None
        length7 = self._header[1] & 0x7F
        extended = 2 if length7 == 126 else 8 if length7 == 127 else 0
        mask = 4 if self._header[1] & 0x80 else 0
        return 2 + extended + mask

    def _count_frame(self) -> None:
        h = self._header
        length7 = h[1] & 0x7F
        if length7 == 126:
            length = struct.unpack("!H", h[2:4])[0]
        elif length7 == 127:
            length = struct.unpack("!Q", h[2:10])[0]
        else:
            length = length7
        self.totals.frames += 1
        self.totals.by_opcode[OPCODES.get(h[0] & 0x0F, "reserved")] += 1
        self._skip = length
        self._header.clear()
