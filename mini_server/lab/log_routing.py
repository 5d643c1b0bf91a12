"""Where the course's log lines go in a notebook: the panel's log, or a view shown on purpose.

Theory of operation
-------------------
Without a handler, Python's logging prints warnings to stderr (``logging.lastResort``).  In
a Jupyter kernel, output is sent to the cell that *started* the task that wrote it: a server
started in a chapter's setup cell writes "! join nope:1: unmatched topic" as a pink stderr
box under the setup cell, long before the learner reaches the step that caused it.

:func:`install` (called by the lab's servers, proxies and panels, in a Jupyter kernel only)
puts one :class:`LabLogRouter` on the ``mini_server`` logger, so lastResort never fires for
our records.  Each record becomes one line, kept in a bounded buffer and sent to:

* every live :class:`~mini_server.lab.panels.ConnectionPanel`, whose frame log is where the
  learner is looking while they click (the client's own records are skipped: the panel gets
  those from the client's event stream already);
* every :class:`LogView` a chapter made on purpose; ``view.print_new()`` prints the lines
  since its last call in the cell that calls it, so "the server logged why" appears under
  the step that caused it;
* stdout, for the lab's own warnings (``mini_server.lab.*``: "this server belonged to
  another event loop", a failed panel action): those are written by the code the learner's
  cell just ran, so they land in that cell, visible and in plain text.

Outside a kernel (scripts, pytest) nothing is installed and logging behaves as usual.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from collections.abc import Callable

ROOT_LOGGER = "mini_server"
BUFFER_LINES = 500

Sink = Callable[[str, logging.LogRecord], None]


class LabLogRouter(logging.Handler):
    """Turns ``mini_server`` records into lines for panels, log views and, for the lab, stdout."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.lines: deque[str] = deque(maxlen=BUFFER_LINES)
        self.total = 0  # lines ever routed: LogView keeps its place by this count
        self._sinks: dict[int, Sink] = {}
        self._next_ref = 0
        self._lock = threading.Lock()  # records may come from the websockets or a worker thread

    def subscribe(self, sink: Sink) -> int:
        """Call ``sink(line, record)`` for every routed record; returns a ref for unsubscribe."""
        with self._lock:
            self._next_ref += 1
            self._sinks[self._next_ref] = sink
            return self._next_ref

    def unsubscribe(self, ref: int) -> None:
        """Stop calling the sink registered under ``ref`` (unknown refs are ignored)."""
        with self._lock:
            self._sinks.pop(ref, None)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a broken record must not break the code that logged it
            self.handleError(record)
            return
        with self._lock:
            self.lines.append(line)
            self.total += 1
            sinks = list(self._sinks.values())
        for sink in sinks:
            try:
                sink(line, record)
            except Exception:
                self.handleError(record)
        if record.levelno >= logging.WARNING and record.name.startswith(f"{ROOT_LOGGER}.lab"):
            print(line, file=sys.stdout)


_router: LabLogRouter | None = None


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where stray stderr lands under the wrong cell)."""
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    return get_ipython is not None and getattr(get_ipython(), "kernel", None) is not None


def install(*, force: bool = False) -> LabLogRouter | None:
    """Route ``mini_server`` logging as described above; once per process, kernels only.

    ``force`` installs outside a kernel too (tests).  Returns the router, or None when
    nothing was installed.
    """
    global _router
    if _router is not None:
        return _router
    if not (force or in_kernel()):
        return None
    _router = LabLogRouter()
    logging.getLogger(ROOT_LOGGER).addHandler(_router)
    return _router


def uninstall() -> None:
    """Remove the router (tests; a kernel keeps it for its life)."""
    global _router
    if _router is not None:
        logging.getLogger(ROOT_LOGGER).removeHandler(_router)
        _router = None


def router() -> LabLogRouter | None:
    """The installed router, if any."""
    return _router


class LogView:
    """The course's log lines, shown where a chapter wants them.

    ``view.print_new()`` prints what was logged since the view was made (or since its last
    call); ``view.lines`` is everything it has seen.  Works in a kernel and in tests (it
    installs the router if needed).
    """

    def __init__(self, *, prefix: str = "server log: ") -> None:
        self.prefix = prefix
        self.lines: list[str] = []
        self._printed = 0
        self._router = install(force=True)
        assert self._router is not None
        self._ref = self._router.subscribe(lambda line, _record: self.lines.append(line))

    def new(self) -> list[str]:
        """Lines logged since the last call of new() or print_new()."""
        fresh, self._printed = self.lines[self._printed:], len(self.lines)
        return fresh

    def print_new(self) -> None:
        """Print the lines logged since the last call, one per line, in the calling cell."""
        for line in self.new():
            print(f"{self.prefix}{line}")

    def close(self) -> None:
        """Stop collecting."""
        if self._router is not None:
            self._router.unsubscribe(self._ref)
