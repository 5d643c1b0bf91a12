"""One log record, one bounded line: what a client sends cannot forge or flood the server log.

Topics, events and frames come from the client.  Written as they are, a topic holding ``\\n``
prints a fake line into the log, and a 1 MB topic prints a 1 MB line for every frame.  The filter
here formats each record once, escapes control characters the way ``repr`` does, and cuts the
line at ``MAX_LINE`` characters, saying how long it was.  The wire is not touched: only what
the log shows.
"""

from __future__ import annotations

import logging
import re

MAX_LINE = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """text with control characters escaped, cut to about ``limit`` characters."""
    escaped = _CONTROL.sub(lambda m: repr(m[0])[1:-1], text)
    if len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}... ({len(escaped)} chars)"


class OneLine(logging.Filter):
    """Turns every record's message into one bounded, escaped line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = one_line(message)
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
