"""Peers' text is escaped before it reaches a terminal or a log; URLs lose their credentials."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.textsafe import check_display_name, printable, redact_url

# What a terminal or log viewer acts on instead of showing.
UNSAFE = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
ATTACK = "honest\x1b[2K\r1. honest - 999999 OMNIT\n\x1b]0;pwned\x07\u202eevil"


def unsafe_chars(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) in UNSAFE]


@given(st.text())
def test_printable_never_lets_a_control_or_format_character_through(text: str) -> None:
    out = printable(text)
    assert unsafe_chars(out) == []
    assert printable(out) == out  # escaping twice changes nothing more


@given(st.text(st.characters(exclude_categories=tuple(UNSAFE))))  # type: ignore[arg-type]
def test_printable_keeps_safe_text_as_it_is(text: str) -> None:
    assert printable(text) == text


@given(st.text(), st.integers(min_value=1, max_value=80))
def test_printable_bounds_the_length(text: str, max_len: int) -> None:
    out = printable(text, max_len=max_len)
    assert len(out) <= max_len and unsafe_chars(out) == []
    full = printable(text)
    assert out == full or (out.endswith("…") and full.startswith(out[:-1]))


def test_the_forged_leaderboard_line_stays_on_one_line() -> None:
    out = printable(ATTACK)
    assert out == ("honest\\x1b[2K\\r1. honest - 999999 OMNIT\\n\\x1b]0;pwned\\x07\\u202eevil")
    assert "\n" not in out and "\x1b" not in out


@pytest.mark.parametrize(
    ("char", "escape"),
    [
        ("\x00", "\\x00"),
        ("\x7f", "\\x7f"),
        ("\x9b", "\\x9b"),  # C1 CSI: an escape sequence in one byte on some terminals
        ("\u200b", "\\u200b"),  # zero-width space
        ("\u2028", "\\u2028"),  # line separator
        ("\U000e0041", "\\U000e0041"),  # tag character
        ("\t", "\\t"),
    ],
)
def test_escapes(char: str, escape: str) -> None:
    assert printable(f"a{char}b") == f"a{escape}b"


def test_printable_cuts_between_escapes() -> None:
    assert printable("ab\x1bcd", max_len=5) == "ab…"
    assert printable("abcdef", max_len=4) == "abc…"
    assert printable("abc", max_len=3) == "abc"


@pytest.mark.parametrize("name", ["user123", "gpu_master99", "Zoë Ünal", "数据 向导", "a" * 64])
def test_printable_display_names_are_accepted(name: str) -> None:
    assert check_display_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (ATTACK, "must be printable: \\x1b at position 7"),
        ("line\nbreak", "must be printable: \\n at position 5"),
        ("abc\u202ecba", "must be printable: \\u202e at position 4"),
        ("zero\u200bwidth", "\\u200b"),
        ("", "must not be empty"),
        (" padded", "must not start or end with a space"),
        ("a" * 65, "at most 64 characters"),
        (42, "must be text"),
    ],
)
def test_other_display_names_are_refused_with_a_reason(name: object, reason: str) -> None:
    with pytest.raises(ValueError, match=r"^a display name") as error:
        check_display_name(name)
    assert reason in str(error.value)
    assert "\n" not in str(error.value) and "\x1b" not in str(error.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mqtts://node:s3cret@broker.example:8883", "mqtts://broker.example:8883"),
        ("mqtt://s3cret@h:1883", "mqtt://h:1883"),
        ("mqtt://h:1883", "mqtt://h:1883"),
        ("mqtt://u:p@ss/w@rd@h:1883", "mqtt://h:1883"),  # unencoded: the last @ ends them
        ("mqtt://u:s3cret@[::1:1883", "mqtt://[::1:1883"),  # malformed: still redacted
        ("u:s3cret@h:1883", "h:1883"),
        ("mqtt://h:1883/?password=s3cret#s3cret", "mqtt://h:1883/"),
        ("mqtt://h\x1b[31m:1883", "mqtt://h\\x1b[31m:1883"),
        ("nope", "nope"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@given(st.text(), st.text(min_size=1), st.text())
def test_redact_url_never_shows_a_password(user: str, password: str, host: str) -> None:
    password = "S3CR3T" + password
    shown = redact_url(f"mqtts://{user}:{password}@{host.replace('@', '')}")
    assert "S3CR3T" not in shown
