"""One log record, one bounded line: what a client sends cannot forge, flood or leak into the log.

Theory of operation
-------------------
Topics, events, refs and frames come from the client.  Written as they are, a topic holding
``\\n`` prints a fake line into the log, a 1 MB topic prints a 1 MB line for every frame, a
join payload prints its token, and a client that repeats a mistake 10,000 times writes
10,000 warnings.  Four rules, all applied only to records that are actually logged:

* **One line.** The filter on every server logger formats each record once, escapes control
  characters the way ``repr`` does, and cuts the line at ``MAX_LINE`` characters, saying how
  long it was.
* **Short fields.** :class:`Clip` wraps a topic, event or ref for a log call: formatted (only
  if the record is emitted) it is escaped and cut at ``MAX_FIELD`` characters with the same
  marker, so one long field cannot push the rest of the line (the reason) off the end.
* **No secrets.** The line passes through :func:`mini_server.redaction.redact_text`, the
  course's one redaction rule (``key=value``, ``"key": value`` pairs and token-looking
  words), on top of the structured redaction the callers already do.
* **No floods.** :class:`Repeats` (one per connection) logs the first ``burst`` records of
  each kind (a log call's template) per ``window`` seconds and counts the rest; when the
  window ends or the connection closes it logs one line with the count.  A flood that
  varies the topic is still one kind.

The wire is never touched: only what the log shows.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from mini_server.redaction import redact_text

MAX_LINE = 500
MAX_FIELD = 120
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """text with control characters escaped, cut to about ``limit`` characters."""
    escaped = _CONTROL.sub(lambda m: repr(m[0])[1:-1], text)
    if len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}... ({len(escaped)} chars)"


class Clip:
    """A log argument shown escaped and cut at ``MAX_FIELD`` characters, formatted lazily."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return one_line(str(self.value), MAX_FIELD)

    def __repr__(self) -> str:
        # cut the raw value first: repr of a 1 MB topic would be a 1 MB string
        value = self.value
        if isinstance(value, str) and len(value) > MAX_FIELD:
            return one_line(repr(value[:MAX_FIELD]), MAX_FIELD + 2) + f"... ({len(value)} chars)"
        return one_line(repr(value), MAX_FIELD)


class OneLine(logging.Filter):
    """Turns every record's message into one bounded, escaped, redacted line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        # Cut generously before redacting, so a huge line costs no huge regex pass.
        safe = one_line(redact_text(message[:4 * MAX_LINE]), MAX_LINE)
        if len(message) > 4 * MAX_LINE:
            safe = f"{safe[:MAX_LINE]}... ({len(message)} chars)"
        if safe != message:
            record.msg, record.args = safe, None
        return True


ONE_LINE = OneLine()


def server_logger(name: str) -> logging.Logger:
    """The logger of a server module, with the one-line filter attached once."""
    logger = logging.getLogger(name)
    if ONE_LINE not in logger.filters:
        logger.addFilter(ONE_LINE)
    return logger


class Repeats:
    """Rate-limits log records of one connection: ``burst`` per kind per ``window`` seconds.

    The kind is the log call's template, so 10,000 unmatched joins to 10,000 topics are one
    kind.  What is held back is counted and reported in one line when the kind's window
    ends (at its next record) or at :meth:`flush` (the connection closed).
    """

    def __init__(self, logger: logging.Logger, *, burst: int = 5, window: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger, self.burst, self.window, self.clock = logger, burst, window, clock
        # template -> [window start, logged, held back, level, last args]
        self._kinds: dict[str, list[Any]] = {}
        self.held_back = 0  # every record ever held back by this limiter

    def log(self, level: int, template: str, *args: Any) -> None:
        """Log like ``logger.log``, unless this kind already used its burst in this window."""
        if not self.logger.isEnabledFor(level):
            return
        now = self.clock()
        entry = self._kinds.get(template)
        if entry is None or now - entry[0] >= self.window:
            if entry is not None:
                self._report(template, entry)
            entry = self._kinds[template] = [now, 0, 0, level, args]
        if entry[1] < self.burst:
            entry[1] += 1
            self.logger.log(level, template, *args)
        else:
            entry[2] += 1
            entry[4] = args
            self.held_back += 1

    def warning(self, template: str, *args: Any) -> None:
        """``log(WARNING, ...)``."""
        self.log(logging.WARNING, template, *args)

    def flush(self) -> None:
        """Report every count still held back (the connection is closing)."""
        for template, entry in self._kinds.items():
            self._report(template, entry)
        self._kinds.clear()

    def _report(self, template: str, entry: list[Any]) -> None:
        if entry[2]:
            # the last one held back, with the count: "... unmatched topic [+9995 like it ...]"
            self.logger.log(entry[3], "%s [+%d like it within %g s, not logged]",
                            template % entry[4], entry[2], self.window)
            entry[2] = 0
