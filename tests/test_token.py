"""Signed tokens (mini_server.server.token): the Phoenix.Token idea, time injected."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math

import pytest

from mini_server.server import token as tokens
from mini_server.server.token import (
    TokenError,
    TokenExpired,
    TokenInvalid,
    TokenMissing,
    sign,
    verify,
)

SECRET = "a-secret-key-base-long-enough-for-phoenix-0123456789"
SALT = "user socket"
T0 = 1_764_440_000.0  # a fixed "now", seconds since the epoch


def b64(raw: bytes) -> str:
    """Base64url without padding, as tokens use it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    """Inverse of b64."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_round_trip_returns_the_signed_data():
    """verify returns exactly the data sign put in."""
    data = {"user_id": 42, "roles": ["reader"], "name": "Zoë"}
    assert verify(SECRET, SALT, sign(SECRET, SALT, data, now=T0), now=T0 + 1) == data


def test_token_has_the_phoenix_shape():
    """A token is SFMyNTY.<payload>.<signature>, all base64url without padding."""
    token = sign(SECRET, SALT, 1, now=T0)
    protected, _payload, signature = token.split(".")
    assert protected == "SFMyNTY" and unb64(protected) == b"HS256"
    assert "=" not in token and "+" not in token and "/" not in token
    assert len(unb64(signature)) == 32  # an HMAC-SHA256 digest


def test_signature_is_hmac_sha256_of_header_and_payload_with_pbkdf2_key():
    """The signature is HMAC-SHA256 over "SFMyNTY.<payload>" with PBKDF2(secret, salt, 1000, 32)."""
    token = sign(SECRET, SALT, "x", now=T0)
    plain_text, _, signature = token.rpartition(".")
    key = hashlib.pbkdf2_hmac("sha256", SECRET.encode(), SALT.encode(), 1000, 32)
    assert unb64(signature) == hmac.new(key, plain_text.encode(), hashlib.sha256).digest()


def test_payload_embeds_data_signed_at_ms_and_default_max_age():
    """The payload is JSON {data, signed_at in ms, max_age 86400 s by default}."""
    payload = json.loads(unb64(sign(SECRET, SALT, [1, 2], now=T0).split(".")[1]))
    assert payload == {"data": [1, 2], "signed_at": 1_764_440_000_000, "max_age": 86_400}


def test_data_is_readable_but_a_forged_token_is_rejected():
    """Anyone can read the data (signed, not encrypted), but editing it breaks the signature."""
    token = sign(SECRET, SALT, {"user_id": 1}, now=T0)
    protected, payload, signature = token.split(".")
    readable = json.loads(unb64(payload))
    assert readable["data"] == {"user_id": 1}  # no secret needed to read it
    readable["data"]["user_id"] = 2
    forged_payload = b64(json.dumps(readable, separators=(",", ":")).encode())
    with pytest.raises(TokenInvalid):
        verify(SECRET, SALT, f"{protected}.{forged_payload}.{signature}", now=T0)


def test_expires_after_the_embedded_max_age():
    """With no max_age at verify time, the embedded one (1 day) decides."""
    token = sign(SECRET, SALT, "u", now=T0)
    assert verify(SECRET, SALT, token, now=T0 + 86_400) == "u"  # exactly max_age: still valid
    with pytest.raises(TokenExpired):
        verify(SECRET, SALT, token, now=T0 + 86_400.01)


def test_max_age_at_sign_time_is_embedded():
    """sign(max_age=60) makes the token expire after 60 s."""
    token = sign(SECRET, SALT, "u", max_age=60, now=T0)
    assert verify(SECRET, SALT, token, now=T0 + 60) == "u"
    with pytest.raises(TokenExpired):
        verify(SECRET, SALT, token, now=T0 + 61)


def test_max_age_at_verify_time_overrides_the_embedded_one():
    """verify(max_age=10) rejects a 1-day token that is 11 s old."""
    token = sign(SECRET, SALT, "u", now=T0)
    with pytest.raises(TokenExpired):
        verify(SECRET, SALT, token, max_age=10, now=T0 + 11)


def test_infinite_max_age_never_expires():
    """math.inf at verify or at sign time disables expiry."""
    old = sign(SECRET, SALT, "u", now=T0)
    assert verify(SECRET, SALT, old, max_age=math.inf, now=T0 + 10 * 365 * 86_400) == "u"
    forever = sign(SECRET, SALT, "u", max_age=math.inf, now=T0)
    assert verify(SECRET, SALT, forever, now=T0 + 10 * 365 * 86_400) == "u"


def test_non_positive_max_age_is_always_expired():
    """max_age <= 0 expires even a brand-new token, as Plug.Crypto does."""
    token = sign(SECRET, SALT, "u", now=T0)
    with pytest.raises(TokenExpired):
        verify(SECRET, SALT, token, max_age=0, now=T0)


def test_signed_at_in_the_future_is_invalid():
    """A token signed after "now" is invalid, not merely young."""
    token = sign(SECRET, SALT, "u", now=T0 + 5)
    with pytest.raises(TokenInvalid, match="future"):
        verify(SECRET, SALT, token, now=T0)


def test_tampered_payload_is_invalid():
    """Changing one character of the payload invalidates the token."""
    protected, payload, signature = sign(SECRET, SALT, {"user_id": 1}, now=T0).split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    with pytest.raises(TokenInvalid):
        verify(SECRET, SALT, f"{protected}.{flipped}.{signature}", now=T0)


def test_tampered_signature_is_invalid():
    """Changing one byte of the signature invalidates the token."""
    protected, payload, signature = sign(SECRET, SALT, "u", now=T0).split(".")
    raw = bytearray(unb64(signature))
    raw[0] ^= 1
    with pytest.raises(TokenInvalid):
        verify(SECRET, SALT, f"{protected}.{payload}.{b64(bytes(raw))}", now=T0)


def test_wrong_salt_is_invalid():
    """A token signed for one salt does not verify under another."""
    token = sign(SECRET, "user socket", "u", now=T0)
    with pytest.raises(TokenInvalid):
        verify(SECRET, "password reset", token, now=T0)


def test_wrong_secret_is_invalid():
    """A token signed with one secret_key_base does not verify with another."""
    token = sign(SECRET, SALT, "u", now=T0)
    with pytest.raises(TokenInvalid):
        verify(SECRET + "-rotated", SALT, token, now=T0)


@pytest.mark.parametrize("missing", [None, "", b""])
def test_missing_token_is_missing(missing):
    """None or an empty token raises TokenMissing, not TokenInvalid."""
    with pytest.raises(TokenMissing):
        verify(SECRET, SALT, missing, now=T0)


@pytest.mark.parametrize("garbage", [
    "not a token",
    "SFMyNTY.only-two",
    "SFMyNTY.a.b.c",
    "SFMyNTY.e30.!!!",
    "SFMyNTY=.e30.AAAA",
    "SGVsbG8.e30.AAAA",
    "\u00e9t\u00e9.x.y",
    b"\xff\xfe",
    12345,
    ["SFMyNTY", "x", "y"],
])
def test_malformed_token_is_invalid(garbage):
    """Anything that is not a well-formed signed token raises TokenInvalid."""
    with pytest.raises(TokenInvalid):
        verify(SECRET, SALT, garbage, now=T0)


def test_errors_share_one_base_class():
    """Callers can catch TokenError for every refusal."""
    assert issubclass(TokenMissing, TokenError)
    assert issubclass(TokenInvalid, TokenError)
    assert issubclass(TokenExpired, TokenError)
    assert len({TokenMissing, TokenInvalid, TokenExpired}) == 3


def test_short_secret_key_base_is_refused():
    """A secret_key_base under 20 bytes is a ValueError, as Phoenix.Token refuses it."""
    with pytest.raises(ValueError, match="at least 20"):
        sign("too short", SALT, "u")


def test_unserializable_data_is_a_type_error():
    """Data that JSON cannot carry is refused at sign time."""
    with pytest.raises(TypeError, match="JSON"):
        sign(SECRET, SALT, {1, 2})


def test_bytes_secret_and_salt_equal_their_utf8_strings():
    """str and bytes secrets/salts derive the same key."""
    token = sign(SECRET.encode(), SALT.encode(), "u", now=T0)
    assert verify(SECRET, SALT, token, now=T0) == "u"


def test_derived_keys_are_cached():
    """PBKDF2 runs once per (secret, salt), not once per token."""
    tokens._derive_key.cache_clear()
    for _ in range(5):
        verify(SECRET, SALT, sign(SECRET, SALT, "u", now=T0), now=T0)
    info = tokens._derive_key.cache_info()
    assert info.misses == 1 and info.hits == 9


def test_default_clock_is_wall_time():
    """Without now=, sign and verify use the real clock, so a fresh token verifies."""
    assert verify(SECRET, SALT, sign(SECRET, SALT, {"ok": True})) == {"ok": True}
