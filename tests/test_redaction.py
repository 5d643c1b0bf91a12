"""The one redaction rule: secret-looking keys and token-looking values are never shown."""

from __future__ import annotations

import pytest

from mini_server.redaction import (
    REDACTED,
    is_secret_key,
    looks_like_token,
    redact,
    redact_text,
    redact_url,
)
from mini_server.server.token import sign

TOKEN = sign("a-secret-key-base-long-enough-for-phoenix-0123456789", "user socket", {"id": 1})
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize("key", [
    "token", "access_token", "api_key", "apiKey", "user_token", "Password", "PASSWD",
    "client_secret", "auth", "X-Auth", "Authorization", "credentials", "session_id",
    "cookie", "signature", "secret_key_base", "refresh-token", "user[token]"])
def test_secret_looking_keys_match_case_insensitively_as_substrings(key):
    """Every key naming a secret, in any case and inside longer names, is secret."""
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["room", "body", "user_id", "vsn", "author", "reason", "n"])
def test_ordinary_keys_are_shown(key):
    """Keys that name no secret, and 'author' (which contains 'auth'), stay readable."""
    assert not is_secret_key(key)


def test_tokens_are_recognised_by_their_look():
    """A sign() token and a JWT look like tokens; ordinary strings do not."""
    assert TOKEN.startswith("SFMyNTY.") and looks_like_token(TOKEN)
    assert looks_like_token(JWT)
    assert not looks_like_token("room:lobby") and not looks_like_token(42)


def test_redact_copies_nested_data_with_secrets_replaced():
    """Values under secret keys and token-looking strings anywhere read [redacted]."""
    params = {"access_token": "a", "room": "r", "nested": {"api_key": {"x": 1}},
              "list": [{"Password": "p"}, TOKEN], "signed": TOKEN, "n": 3}
    assert redact(params) == {"access_token": REDACTED, "room": "r",
                              "nested": {"api_key": REDACTED},
                              "list": [{"Password": REDACTED}, REDACTED], "signed": REDACTED,
                              "n": 3}
    assert params["access_token"] == "a"  # a copy: the original is untouched


@pytest.mark.parametrize(("text", "shown"), [
    ("room:1 phx_join (1, 1) {'access_token': 'abc', 'body': 'hi'}",
     "room:1 phx_join (1, 1) {'access_token': '[redacted]', 'body': 'hi'}"),
    ('["1","1","room:1","phx_join",{"Password":"a b","n":1}]',
     '["1","1","room:1","phx_join",{"Password":"[redacted]","n":1}]'),
    ("params {'user_token': 12, 'room': 'x'}", "params {'user_token': '[redacted]', 'room': 'x'}"),
    (f"hello {TOKEN} there", "hello [redacted] there"),
    (f"jwt {JWT}", "jwt [redacted]"),
    ("redis://:hunter2@127.0.0.1:6379/0", "redis://:[redacted]@127.0.0.1:6379/0"),
    ("GET /socket/websocket?api_key=k&vsn=2.0.0",
     "GET /socket/websocket?api_key=[redacted]&vsn=2.0.0"),
    ("x closing id=7 with 1001: disconnect", "x closing id=7 with 1001: disconnect"),
])
def test_redact_text_applies_the_same_rule_to_written_lines(text, shown):
    """JSON, repr and query notations, URL passwords and bare tokens are redacted in text."""
    assert redact_text(text) == shown


def test_redact_url_redacts_the_query_string_and_password():
    """The connect URL a client logs keeps its shape, minus every secret value."""
    url = (f"ws://u:pw@127.0.0.1:4000/socket/websocket?token={TOKEN}&user%5Btoken%5D=t"
           "&access_token=a&room=1&vsn=2.0.0")
    assert redact_url(url) == ("ws://u:[redacted]@127.0.0.1:4000/socket/websocket?"
                               "token=[redacted]&user%5Btoken%5D=[redacted]"
                               "&access_token=[redacted]&room=1&vsn=2.0.0")
