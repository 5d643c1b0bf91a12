"""The comparison itself: canonical JSON, the four verdicts, where the golden files are."""

from __future__ import annotations

import copy

import pytest
from replay import canonical, text_event
from verdicts import COSMETIC, DIFF, SAME, TEXTS, VENDORED, load, shared_dir, verdict


def frame(text: str, step: int = 2) -> dict:
    """A text frame event as the replayer records it."""
    return {"step": step, "conn": "A", **text_event(text)}


REPLY = '["1","1","room:a","phx_reply",{"response":{},"status":"ok"}]'
CLOSE = {"step": 3, "conn": "A", "type": "close", "code": 1011, "reason": "",
         "close_frame": True}


def test_canonical_json_sorts_keys_without_spaces_or_escapes():
    """Canonical JSON sorts keys recursively, drops whitespace and keeps non-ASCII."""
    assert canonical('{"b": {"d": 1, "c": "é"}, "a": [2, 1]}') == '{"a":[2,1],"b":{"c":"é","d":1}}'
    assert canonical("not json") is None


def test_identical_transcripts_are_same():
    """Equal events, raw text included, are "same"."""
    assert verdict([frame(REPLY), CLOSE], [frame(REPLY), CLOSE]) == SAME


def test_key_order_alone_is_cosmetic():
    """Another key order in a JSON frame changes only the raw text: "cosmetic"."""
    reordered = '["1","1","room:a","phx_reply",{"status":"ok","response":{}}]'
    assert verdict([frame(reordered)], [frame(REPLY)]) == COSMETIC


def test_close_reason_and_http_body_are_texts():
    """A close reason or an HTTP body worded otherwise is "texts"."""
    worded = {**CLOSE, "reason": "invalid data"}
    assert verdict([worded], [CLOSE]) == TEXTS
    got = {"step": 0, "conn": "A", "type": "http_error", "status": 403,
           "content_type": "text/plain", "body": "Forbidden"}
    assert verdict([got], [{**got, "content_type": "", "body": ""}]) == TEXTS


@pytest.mark.parametrize("change", [
    lambda t: t[1].update(code=1007),                 # another close code
    lambda t: t[1].update(close_frame=False),          # no close frame
    lambda t: t[0].update(step=4),                     # a later receive window
    lambda t: t.pop(),                                 # an event missing
    lambda t: t.reverse(),                             # another order
    lambda t: t[0].update(**text_event('["1","1","room:a","phx_reply",{}]')),  # another frame
    lambda t: t.append({"step": 3, "conn": "A", "type": "too_early", "frame": 1, "min_ms": 50,
                        "after_ms": 2}),
])
def test_anything_else_is_diff(change):
    """Frames, order, windows, codes and too_early are DIFF."""
    want = [frame(REPLY), CLOSE]
    got = copy.deepcopy(want)
    change(got)
    assert verdict(got, want) == DIFF


def test_non_json_text_is_compared_by_raw_text():
    """A frame that is not JSON has no canon, so its raw text is what counts."""
    assert verdict([frame("hello")], [frame("hellO")]) == DIFF


def test_long_frames_are_compared_by_canonical_hash():
    """Frames over 2000 characters compare by the hash of their canonical JSON."""
    big = '{"x":"' + "a" * 3000 + '","y":1}'
    spaced = '{"y": 1, "x":"' + "a" * 3000 + '"}'
    assert "text" not in text_event(big)
    assert verdict([frame(spaced)], [frame(big)]) == COSMETIC


def test_vendored_golden_equals_the_shared_one():
    """golden/ is a byte-for-byte copy of ../shared/fidelity (when that is present)."""
    shared = shared_dir()
    vendored = sorted(p.name for p in VENDORED.glob("*.json"))
    assert vendored, "tests/fidelity/golden/ holds no transcript"
    if shared is None:
        pytest.skip("../shared/fidelity is not beside this checkout; the vendored copy is used")
    for name in vendored:
        assert (VENDORED / name).read_bytes() == (shared / name).read_bytes(), (
            f"golden/{name} differs from {shared / name}: copy it again")
    assert {p.name for p in shared.glob("*.json")} <= set(vendored), "a shared file is missing"


def test_golden_files_have_the_documented_format():
    """The vendored file is format v1 with as many scenarios as it says."""
    data = load(VENDORED / "phoenix-1.8.12.json")
    assert data["scenario_count"] == len(data["scenarios"]) == 82
