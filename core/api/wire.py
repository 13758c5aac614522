"""The control socket's lines: requests, replies and events, as msgspec JSON.

A unix socket speaks newline-delimited JSON objects:

- request ``{"id": 1, "cmd": "snapshot" | "subscribe" | <command>, "params": {...}}``
- reply ``{"id": 1, "ok": true, "result": {...}}`` or ``{"id": 1, "ok": false, "error": "..."}``
- after ``subscribe``, events arrive as ``{"event": {"type": ...}}`` lines among the replies.

Results and events are the Structs of ``core.api`` encoded as they are; each side decodes
what it reads into them (``core.api.commands`` knows every command's types).
"""

from __future__ import annotations

from typing import Any

import msgspec

MAX_LINE = 1 << 20
SUBSCRIBE = "subscribe"
"""Not a node command: the socket's own, to receive events on this connection."""


class WireRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A request line; ``params`` stays raw until the command's type is known."""

    cmd: str
    id: int | None = None
    # Raw fields take an empty Raw for "absent" (msgspec decodes no ``Raw | None`` union);
    # a sender always fills it in (an empty Raw would encode as nothing at all).
    params: msgspec.Raw = msgspec.Raw()


class WireReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A reply line as the node writes it (``result`` is any encodable view)."""

    ok: bool
    id: int | None = None
    result: Any = None
    error: str | None = None


class WireEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event line as the node writes it."""

    event: Any


class WireLine(msgspec.Struct, frozen=True, kw_only=True):
    """Any line as a client reads it: a reply or an event, its payload still raw (an empty
    Raw when absent)."""

    id: int | None = None
    ok: bool = False
    result: msgspec.Raw = msgspec.Raw()
    error: str | None = None
    event: msgspec.Raw = msgspec.Raw()


_encoder = msgspec.json.Encoder()


def encode_line(message: msgspec.Struct) -> bytes:
    """One line of JSON, newline included."""
    return _encoder.encode(message) + b"\n"
