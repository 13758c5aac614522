"""Text that is safe to show: peers' strings escaped for terminals and logs, URLs redacted."""

from __future__ import annotations

import logging
import re
import traceback
import unicodedata
from typing import Any, Final

DISPLAY_NAME_MAX: Final = 64
_ELLIPSIS: Final = "…"
# Unicode categories a terminal or log viewer may act on instead of showing: controls (C0,
# C1, ESC, DEL), format characters (bidi overrides, zero-width joiners, tags), surrogates,
# unassigned code points (a later Unicode may make them format characters), and the line
# and paragraph separators.
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
_NAMED_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SCHEME_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)(.*)$", re.DOTALL)


def is_unsafe_char(char: str) -> bool:
    """True for a character that must not reach a terminal or log line as it is."""
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _escape(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, max_len: int | None = None) -> str:
    """``text`` with every unsafe character escaped (``\\x1b``, ``\\n``, ``\\u202e``).

    With ``max_len``, the result is at most that many characters: it is cut between escapes
    (never inside one) and ends with an ellipsis. Safe text comes back unchanged.
    """
    if max_len is not None and max_len < 1:
        raise ValueError("max_len must be at least 1")
    pieces: list[str] = []
    length = 0
    for char in text:
        piece = _escape(char) if is_unsafe_char(char) else char
        pieces.append(piece)
        length += len(piece)
    if max_len is None or length <= max_len:
        return "".join(pieces)
    kept: list[str] = []
    budget = max_len - len(_ELLIPSIS)
    for piece in pieces:
        if len(piece) > budget:
            break
        kept.append(piece)
        budget -= len(piece)
    return "".join(kept) + _ELLIPSIS


def check_display_name(name: object, max_len: int = DISPLAY_NAME_MAX) -> str:
    """``name`` when it is a fit display name; ValueError saying why not otherwise.

    A display name is shown to every user of the network, in terminals and logs: 1 to
    ``max_len`` printable characters, no leading or trailing space, no control or format
    characters (no escape sequences, newlines, bidi overrides or zero-width characters).
    """
    if not isinstance(name, str):
        raise ValueError("a display name must be text")
    if not name:
        raise ValueError("a display name must not be empty")
    if len(name) > max_len:
        raise ValueError(f"a display name must be at most {max_len} characters")
    for position, char in enumerate(name):
        if is_unsafe_char(char):
            raise ValueError(
                f"a display name must be printable: {_escape(char)} at position {position + 1}"
            )
    if name != name.strip():
        raise ValueError("a display name must not start or end with a space")
    return name


def redact_url(url: str) -> str:
    """``url`` for showing: no user, password, query or fragment, unsafe characters escaped.

    Works on malformed URLs too (it never raises): everything up to the last ``@`` after the
    scheme is credentials, whatever characters they hold.
    """
    match = _SCHEME_RE.match(url)
    scheme, rest = (match.group(1), match.group(2)) if match else ("", url)
    rest = rest.rpartition("@")[2]
    for mark in ("?", "#"):
        rest = rest.partition(mark)[0]
    return printable(scheme + rest, max_len=300)


class PrintableFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose lines carry no control characters, whatever they quote.

    A log line quotes peers' text (names, reasons, topics): one with a newline could forge
    a log line, one with ESC could rewrite the operator's terminal. Tracebacks keep their
    own line breaks; each of their lines is escaped too.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        # An exception's message may quote a peer: its line breaks are escaped, not kept.
        if ei and isinstance(ei[1], BaseException):
            for part in _chain(traceback.TracebackException.from_exception(ei[1])):
                message = "".join(part.format_exception_only()).rstrip("\n")
                if "\n" in message:
                    text = text.replace(message, printable(message))
        return _printable_lines(text)

    def formatStack(self, stack_info: str) -> str:
        return _printable_lines(super().formatStack(stack_info))


def _printable_lines(text: str) -> str:
    return "\n".join(printable(line) for line in text.split("\n"))


def _chain(te: traceback.TracebackException) -> list[traceback.TracebackException]:
    """``te`` and every exception chained to it (causes, contexts, group members)."""
    found: list[traceback.TracebackException] = []
    todo = [te]
    while todo:
        part = todo.pop()
        if any(part is seen for seen in found):
            continue
        found.append(part)
        todo += [t for t in (part.__cause__, part.__context__) if t is not None]
        todo += getattr(part, "exceptions", None) or []
    return found
