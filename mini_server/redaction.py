"""One redaction rule for everything the course shows: logs, snapshots, panels, event text.

Theory of operation
-------------------
The course teaches tokens in connect and join params, so any place that *shows* a param or
a payload (server log lines, ``Endpoint.snapshot()`` and the lab's ``/state``, the client's
log and event-stream text, the panels' HTML) could leak one learner's secret to a screen,
a screenshot or a shared log.  This module is the single rule, applied in two forms:

* **Structured** (:func:`redact`): a copy of dicts and lists in which the value of every
  secret-looking key, and every string that looks like a token, reads ``"[redacted]"``.
* **Text** (:func:`redact_text`, :func:`redact_url`): the same rule applied to a line that
  is already written: ``key=value`` (query strings), ``"key": value`` / ``'key': value``
  (JSON and Python reprs), a URL's ``user:password@``, and token-looking words.

A **key is secret** when its name, lower-cased, contains one of :data:`SECRET_KEY_PARTS`
(``token``, ``secret``, ``password``, ``key``, ``auth``, ``session``, ...): substrings, so
``access_token``, ``api_key``, ``user_token``, ``Password`` and ``X-Auth`` all match.  It
over-redacts on purpose (``keyboard`` reads redacted): a hidden harmless value costs a
learner a second, a shown token costs a session.  :data:`NOT_SECRET` lists the few
ordinary words that merely contain a part (``author``), so chat payloads stay readable.
A **value is a token** when it is a string that starts like a Phoenix token
(``SFMyNTY.``: base64 of ``HS256``, what :func:`mini_server.server.token.sign` makes;
``QTEyOEdDTQ.``: Phoenix.Token.encrypt's ``A128GCM``) or has a JWT's three dotted parts.

Redaction is for **display only**: nothing here runs per frame on the wire.  Callers redact
when they render (a snapshot, a log line that is enabled, an event text someone reads),
so fan-out and decoding never pay for it (``bench/fanout.py`` measures that).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["NOT_SECRET", "REDACTED", "SECRET_KEY_PARTS", "TOKEN_PREFIXES", "is_secret_key",
           "looks_like_token", "redact", "redact_text", "redact_url"]

REDACTED = "[redacted]"
#: Substrings of key names whose values are never shown (compared lower-cased).
SECRET_KEY_PARTS: tuple[str, ...] = (
    "token", "secret", "password", "passwd", "pwd", "key", "auth", "credential", "session",
    "cookie", "signature", "bearer", "jwt", "private", "salt")
#: Whole key names that contain a part above but hold nothing secret.
NOT_SECRET: frozenset[str] = frozenset({"author", "authors", "author_id", "author_name"})
#: How Phoenix tokens begin: signed (HS256) and encrypted (A128GCM) ones.
TOKEN_PREFIXES: tuple[str, ...] = ("SFMyNTY.", "QTEyOEdDTQ.")

_PARTS = "|".join(map(re.escape, SECRET_KEY_PARTS))
_KEY_RE = re.compile(_PARTS)
_B64 = r"[A-Za-z0-9_\-]"
_JWT = rf"eyJ{_B64}*\.{_B64}+\.{_B64}+"
_TOKEN_RE = re.compile(rf"(?:{'|'.join(map(re.escape, TOKEN_PREFIXES))})[A-Za-z0-9_\-.=]*"
                       rf"|{_JWT}")
_JWT_RE = re.compile(rf"{_JWT}\Z")
# A secret-looking key followed by its value, in the three notations logs use:
# "key": "v" / 'key': 'v' (JSON, repr; string values only, quoted), key=v (query, kv lines).
_QUOTED_PAIR_RE = re.compile(
    rf"""(?P<q>["'])(?P<key>[^"'\s]*(?:{_PARTS})[^"'\s]*)(?P=q)(?P<sep>\s*:\s*)"""
    r"""(?P<val>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,{}\[\]\s]+)""", re.IGNORECASE)
_EQUALS_PAIR_RE = re.compile(
    rf"(?P<key>[\w\[\]%.\-]*(?:{_PARTS})[\w\[\]%.\-]*)=(?P<val>\[redacted\]|[^&\s,;'\"}}\]]*)",
    re.IGNORECASE)


def is_secret_key(key: object) -> bool:
    """True when a param or payload key names something secret (case-insensitive substrings)."""
    name = str(key).lower()
    return name not in NOT_SECRET and _KEY_RE.search(name) is not None


def looks_like_token(value: object) -> bool:
    """True for a string shaped like a Phoenix token or a JWT, whatever key holds it."""
    return isinstance(value, str) and (value.startswith(TOKEN_PREFIXES)
                                       or _JWT_RE.match(value) is not None)


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-keyed values and token-looking strings redacted.

    Dicts, lists and tuples are copied (tuples stay tuples); anything else is returned as
    it is, or as ``"[redacted]"`` when it looks like a token.  Not for the hot path: call it
    where a value is about to be shown.
    """
    if isinstance(value, dict):
        return {k: REDACTED if is_secret_key(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    if looks_like_token(value):
        return REDACTED
    return value


def _quoted_pair(match: re.Match[str]) -> str:
    key = match["key"]
    if not is_secret_key(key):
        return match[0]
    q = match["q"]
    return f"{q}{key}{q}{match['sep']}{q}{REDACTED}{q}"


def _equals_pair(match: re.Match[str]) -> str:
    key = match["key"]
    # a query key may be nested (user[token]) or percent-encoded: judge its last name part
    name = re.split(r"[\[\]]", key.rstrip("]"))[-1] or key
    if not (is_secret_key(name) or is_secret_key(key)) or not match["val"]:
        return match[0]
    return f"{key}={REDACTED}"


def redact_text(text: str) -> str:
    """The same rule on text already written: key/value pairs, URLs' passwords, tokens."""
    if not text:
        return text
    text = _TOKEN_RE.sub(REDACTED, text)
    if "'" in text or '"' in text:
        text = _QUOTED_PAIR_RE.sub(_quoted_pair, text)
    if "=" in text:
        text = _EQUALS_PAIR_RE.sub(_equals_pair, text)
    if "@" in text:
        text = _USERINFO_RE.sub(rf"\g<scheme>\g<user>:{REDACTED}@", text)
    return text


_USERINFO_RE = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@",
                          re.IGNORECASE)


def redact_url(url: str) -> str:
    """A URL fit for a log line: secret query values and any password redacted."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{host}" if colon else netloc
    query = redact_text(parts.query) if parts.query else parts.query
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
