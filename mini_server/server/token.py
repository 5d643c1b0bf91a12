"""Signed tokens with a salt and a max age: the Phoenix.Token idea, in Python.

Theory of operation
-------------------
A page (or any trusted code) calls :func:`sign` to hand a client a token that says "this
is user 42"; the client passes it back in its socket params, and ``connect`` calls
:func:`verify` to learn the user without a database lookup.

* **Key.** A 32-byte key is derived from the endpoint's ``secret_key_base`` and a
  ``salt`` (a namespace such as ``"user socket"``) with PBKDF2-HMAC-SHA256, 1000
  iterations, as Plug.Crypto.KeyGenerator does.  Derivation is slow on purpose, so keys
  are cached per (secret, salt).  A token signed with one salt never verifies with another.
* **Payload.** ``{"data": ..., "signed_at": <ms since epoch>, "max_age": <seconds>}``.
  Phoenix serializes the tuple ``{data, signed_at_ms, max_age}`` with Erlang's
  ``term_to_binary``; we use **JSON instead of term_to_binary**, so our tokens have the
  same shape but are not interchangeable with Phoenix's, and ``data`` must be JSON-able.
* **Token.** ``"SFMyNTY.<payload>.<signature>"``: base64url without padding everywhere,
  ``SFMyNTY`` is base64 of the protected header ``"HS256"``, and the signature is
  HMAC-SHA256 over the ASCII text ``"SFMyNTY.<payload>"`` (Plug's MessageVerifier signs the
  protected header, a dot and the payload).  Signatures are compared in constant time.
* **Signed, not encrypted.** Anyone holding the token can base64-decode the middle part
  and read ``data``; nobody without the secret can change it.  Never put secrets in it.
  (Phoenix.Token.encrypt exists for confidentiality; this module does not implement it.)

Verification follows Plug.Crypto 2.1: a missing token is :class:`TokenMissing`; a token
that does not parse or whose signature does not match (tampering, wrong salt, wrong
secret) is :class:`TokenInvalid`.  Then the age: ``max_age`` defaults to the value
embedded at signing (86 400 s); infinity never expires (and skips the remaining checks,
as Plug does); ``max_age <= 0`` is expired; a ``signed_at`` in the future is invalid;
``signed_at + max_age`` strictly before now is :class:`TokenExpired`.  Time is a
parameter (``now=``, seconds since the epoch) so tests never sleep.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import math
import re
import time
from typing import Any

__all__ = [
    "DEFAULT_MAX_AGE",
    "TokenError",
    "TokenExpired",
    "TokenInvalid",
    "TokenMissing",
    "sign",
    "verify",
]

DEFAULT_MAX_AGE = 86_400  # seconds, Plug.Crypto's default: one day
KEY_ITERATIONS = 1000  # Plug.Crypto.KeyGenerator defaults
KEY_LENGTH = 32
MIN_SECRET_BYTES = 20  # Phoenix.Token refuses shorter secret_key_base strings
PROTECTED = "SFMyNTY"  # base64url("HS256"), the only algorithm we sign with

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class TokenError(ValueError):
    """A token that cannot be trusted; the subclass says why."""


class TokenMissing(TokenError):
    """No token at all (None or empty), Phoenix's {:error, :missing}."""


class TokenInvalid(TokenError):
    """Malformed, tampered, wrong salt or secret, or signed in the future ({:error, :invalid})."""


class TokenExpired(TokenError):
    """Genuine, but older than max_age ({:error, :expired})."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # urlsafe_b64decode silently skips foreign characters; a token must be exact.
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise TokenInvalid("token is not base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise TokenInvalid("token is not base64url text") from None


def _as_bytes(name: str, value: str | bytes) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"{name} must be str or bytes, got {type(value).__name__}")


@functools.lru_cache(maxsize=128)
def _derive_key(secret_key_base: bytes, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", secret_key_base, salt, KEY_ITERATIONS, KEY_LENGTH)


def _key(secret_key_base: str | bytes, salt: str | bytes) -> bytes:
    secret = _as_bytes("secret_key_base", secret_key_base)
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"secret_key_base is {len(secret)} bytes; use at least {MIN_SECRET_BYTES} random "
            "bytes (Phoenix refuses shorter ones), e.g. secrets.token_urlsafe(48)")
    return _derive_key(secret, _as_bytes("salt", salt))


def _mac(key: bytes, plain_text: str) -> bytes:
    return hmac.new(key, plain_text.encode("ascii"), hashlib.sha256).digest()


def _now_ms(now: float | None) -> int:
    return math.floor((time.time() if now is None else now) * 1000)


def sign(
    secret_key_base: str | bytes,
    salt: str | bytes,
    data: Any,
    *,
    max_age: float = DEFAULT_MAX_AGE,
    now: float | None = None,
) -> str:
    """Return a token carrying ``data`` (readable by anyone, forgeable by no one)."""
    embedded = None if math.isinf(max_age) else max_age  # JSON has no infinity
    try:
        payload = json.dumps(
            {"data": data, "signed_at": _now_ms(now), "max_age": embedded},
            separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"token data must be JSON-serializable: {exc}") from None
    plain_text = f"{PROTECTED}.{_b64encode(payload.encode('utf-8'))}"
    return f"{plain_text}.{_b64encode(_mac(_key(secret_key_base, salt), plain_text))}"


def _open(key: bytes, token: Any) -> dict:
    """Check the signature and return the decoded payload object."""
    if isinstance(token, (bytes, bytearray)):
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise TokenInvalid("token is not ASCII") from None
    if not isinstance(token, str):
        raise TokenInvalid(f"token must be a string, got {type(token).__name__}")
    parts = token.split(".", 2)
    if len(parts) != 3:
        raise TokenInvalid("token must have three dot-separated parts")
    protected, payload, signature = (_b64decode(part) for part in parts)
    if protected != b"HS256":
        raise TokenInvalid("token was not signed with HS256")
    plain_text = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_mac(key, plain_text), signature):
        raise TokenInvalid("token signature does not match (tampered, wrong salt or secret)")
    try:
        decoded = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise TokenInvalid("token payload is not JSON") from None
    if (not isinstance(decoded, dict) or not {"data", "signed_at", "max_age"} <= decoded.keys()
            or type(decoded["signed_at"]) is not int
            or not (decoded["max_age"] is None
                    or type(decoded["max_age"]) in (int, float))):
        raise TokenInvalid("token payload lacks data, signed_at or max_age")
    return decoded


def verify(
    secret_key_base: str | bytes,
    salt: str | bytes,
    token: str | bytes | None,
    max_age: float | None = None,
    *,
    now: float | None = None,
) -> Any:
    """Return the data inside ``token``, or raise TokenMissing, TokenInvalid or TokenExpired.

    ``max_age`` (seconds) overrides the age embedded at signing; ``math.inf`` never expires.
    """
    if token is None or token == "" or token == b"":
        raise TokenMissing("no token given")
    decoded = _open(_key(secret_key_base, salt), token)
    if max_age is None:
        max_age = math.inf if decoded["max_age"] is None else decoded["max_age"]
    if math.isinf(max_age) and max_age > 0:
        return decoded["data"]
    if max_age <= 0:
        raise TokenExpired(f"max_age is {max_age}: every token is expired")
    signed_at, now_ms = decoded["signed_at"], _now_ms(now)
    if signed_at > now_ms:
        raise TokenInvalid(f"token signed {signed_at - now_ms} ms in the future")
    if signed_at + math.trunc(max_age * 1000) < now_ms:
        age = (now_ms - signed_at) / 1000
        raise TokenExpired(f"token is {age:.3f} s old; max_age is {max_age} s")
    return decoded["data"]
