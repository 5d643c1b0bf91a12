"""A channel's mailbox: a FIFO with back-pressure for client pushes and an urgent slot.

Theory of operation
-------------------
Phoenix gives every channel process an unbounded Erlang mailbox.  mini_server bounds it so
one client cannot grow server memory without limit:

* ``put`` (client pushes, awaited by the connection's reader) waits while ``maxsize`` items
  are queued, so a client that out-pushes its channel stops being read: websockets stops
  reading its socket and TCP pushes back on the client alone;
* ``put_nowait`` (``send_info``, intercepted broadcasts: callers that cannot wait) accepts
  up to ten times ``maxsize`` and then refuses, and the caller logs the drop;
* ``interrupt`` places one item ahead of the queue (the stop request when the connection
  closes), and ``close`` refuses everything and releases waiting writers once the channel
  is gone, so a reader never waits on a dead channel.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Mailbox:
    """A FIFO with a soft bound that awaiting writers respect and an urgent slot."""

    # Slots, and a future only while someone waits (not two Events per channel): a room of
    # ten thousand channels is that many mailboxes for the garbage collector to walk.
    __slots__ = ("_getter", "_items", "_putters", "_urgent", "closed", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Any] = deque()
        self._urgent: Any = None
        self.closed = False
        self._getter: asyncio.Future[None] | None = None  # the channel task, waiting
        self._putters: list[asyncio.Future[None]] | None = None  # writers waiting for room

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: Any) -> None:
        """Append, first waiting while the mailbox is full (client pushes)."""
        while len(self._items) >= self.maxsize and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            if self._putters is None:
                self._putters = []
            self._putters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._putters:
                    self._putters.remove(waiter)
        if not self.closed:
            self._items.append(item)
        self._wake_getter()

    def put_nowait(self, item: Any) -> bool:
        """Append without waiting (internal messages); False past the hard cap."""
        if len(self._items) >= self.maxsize * 10 or self.closed:
            return False
        self._items.append(item)
        self._wake_getter()
        return True

    def close(self) -> None:
        """Refuse new items and release waiting writers: the channel is gone."""
        self.closed = True
        self._items.clear()
        self._wake_putters()

    def interrupt(self, item: Any) -> None:
        """Make ``item`` the next thing ``get`` returns, ahead of the queue."""
        self._urgent = item
        self._wake_getter()

    async def get(self) -> Any:
        """The urgent item if any, else the oldest item; waits while empty."""
        while True:
            if self._urgent is not None:
                item, self._urgent = self._urgent, None
                return item
            if self._items:
                item = self._items.popleft()
                if self._putters and len(self._items) < self.maxsize:
                    self._wake_putters()
                return item
            # Checked and parked in one step, so a wake-up cannot fall between the two.
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None

    def _wake_getter(self) -> None:
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def _wake_putters(self) -> None:
        for waiter in self._putters or ():
            if not waiter.done():
                waiter.set_result(None)
