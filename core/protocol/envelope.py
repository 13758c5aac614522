"""The wire protocol: a versioned MQTT topic tree and signed JSON envelopes.

Every MQTT payload is one UTF-8 JSON envelope::

    {"body": {"v": 1, "type": "hello", "sender": "<node id>", "seq": 7, "ts": 1.7e9,
              "data": {...}},
     "sig": "<base64 Ed25519 signature over the exact bytes of the body value>"}

The signature covers the body bytes *as transmitted*, so the receiver verifies the raw slice
(decoded with ``msgspec.Raw``) and never a re-serialisation, and the sender builds the wire
bytes by concatenation so that slice is exactly what it signed. The envelope stays plain JSON
so ``mosquitto_sub`` and MQTT Explorer can show it.

Receivers treat every inbound payload as hostile: :func:`decode` checks size, JSON, schema and
signature; :class:`InboundFilter` then checks that the sender may speak on the topic, that the
message is not a replay and that its clock is sane. Both give a short reason for each drop.

Amounts of OMNIT are always integers in base units, never floats.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import math
import re
import time
from dataclasses import dataclass
from typing import ClassVar, Final, TypeVar

import msgspec

from core.errors import ProtocolError
from core.identity import Identity, verify_signature
from core.protocol.topics import TOPIC_SPECS

PROTOCOL_VERSION: Final = 2
# Larger than any message we send (a leaderboard page of 1,000 rows is ~200 kB; a work
# proof at most ~90 kB) yet small enough that a hostile peer cannot make a receiver parse
# megabytes per message.
MAX_MESSAGE_BYTES: Final = 1_048_576
SIGNATURE_BYTES: Final = 64
SEQ_MAX: Final = 2**63 - 1

_NODE_ID_RE: Final = re.compile(r"[0-9a-f]{64}")
_TYPE_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every message payload (the envelope's ``data``).

    Subclasses set ``TYPE`` (the wire type name), optionally ``TOPIC_KINDS`` (the topic kinds
    it may arrive on; empty means any of ours) and register with :func:`register_message_type`.
    Unknown fields are ignored, so a newer sender can add optional fields within ``v: 1``.
    """

    TYPE: ClassVar[str] = ""
    TOPIC_KINDS: ClassVar[frozenset[str]] = frozenset()

    def validate(self) -> None:
        """Checks the schema cannot express; raise :class:`ProtocolError`."""


P = TypeVar("P", bound=Payload)
T = TypeVar("T")

MESSAGE_TYPES: Final[dict[str, type[Payload]]] = {}
_DECODERS: Final[dict[str, msgspec.json.Decoder[Payload]]] = {}


def register_message_type(cls: type[P]) -> type[P]:
    """Class decorator adding a payload type to the registry (type names are unique)."""
    name = cls.TYPE
    if not _TYPE_NAME_RE.fullmatch(name):
        raise ValueError(f"{cls.__name__}: bad message type name {name!r}")
    if name in MESSAGE_TYPES:
        raise ValueError(f"message type {name!r} is already registered")
    unknown = cls.TOPIC_KINDS - TOPIC_SPECS.keys()
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown topic kinds {sorted(unknown)}")
    MESSAGE_TYPES[name] = cls
    _DECODERS[name] = msgspec.json.Decoder(cls)
    return cls


def b64decode_strict(value: str, field: str) -> bytes:
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad-base64", f"{field} is not valid base64") from None


def raw_json(value: object) -> msgspec.Raw:
    """``value`` encoded as JSON, for :attr:`Response.result`."""
    return msgspec.Raw(msgspec.json.encode(value))


# --------------------------------------------------------------------------------------------
# Envelopes


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message whose signature has been verified."""

    type: str
    sender: str
    seq: int
    ts: float
    data: Payload
    size: int

    def expect(self, type_: builtins.type[P]) -> P:
        """``data`` as ``type_``; ProtocolError when it is another type."""
        if not isinstance(self.data, type_):
            raise ProtocolError("bad-payload", f"expected {type_.TYPE}, got {self.type}")
        return self.data


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    body: msgspec.Raw
    sig: str


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    type: str
    sender: str
    seq: int
    ts: float
    data: msgspec.Raw


class _BodyVersion(msgspec.Struct):
    v: int


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope)
_BODY_DECODER: Final = msgspec.json.Decoder(_Body)
_VERSION_DECODER: Final = msgspec.json.Decoder(_BodyVersion)
_ENCODER: Final = msgspec.json.Encoder()


def encode(
    identity: Identity, seq: int, type_name: str, data: Payload, ts: float | None = None
) -> bytes:
    """Sign ``data`` as message ``type_name`` from ``identity`` and return the wire bytes.

    ``data`` is round-tripped through the receivers' decoder first: msgspec checks constraints
    only when decoding, and a sender should fail loudly rather than emit what peers will drop.
    """
    cls = MESSAGE_TYPES.get(type_name)
    if cls is None:
        raise ValueError(f"unknown message type {type_name!r}")
    if type(data) is not cls:
        raise TypeError(f"{type_name} needs a {cls.__name__}, not {type(data).__name__}")
    if not 1 <= seq <= SEQ_MAX:
        raise ValueError(f"seq out of range: {seq}")
    ts = time.time() if ts is None else ts
    if not (math.isfinite(ts) and ts >= 0):
        raise ValueError(f"bad timestamp: {ts}")
    data_json = _ENCODER.encode(data)
    try:
        _DECODERS[type_name].decode(data_json).validate()
    except (msgspec.DecodeError, ProtocolError) as exc:
        # DecodeError too: a Response.result Raw holding broken JSON breaks the whole body.
        raise ValueError(f"{type_name} payload is invalid: {exc}") from None
    body = _ENCODER.encode(
        _Body(
            v=PROTOCOL_VERSION,
            type=type_name,
            sender=identity.node_id,
            seq=seq,
            ts=ts,
            data=msgspec.Raw(data_json),
        )
    )
    sig = base64.b64encode(identity.sign(body))
    # Concatenate rather than encode a dict: the body bytes on the wire are the signed bytes.
    return b'{"body":' + body + b',"sig":"' + sig + b'"}'


def decode(raw: bytes | bytearray | memoryview, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Parse and authenticate one wire payload; ProtocolError (with a reason) when it is bad."""
    size = len(raw)
    if size > max_bytes:
        raise ProtocolError("oversized", f"{size} bytes > {max_bytes}")
    try:
        envelope = _ENVELOPE_DECODER.decode(raw)
        body = _decode_body(envelope.body)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad-envelope", str(exc)) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        # msgspec recurses on nested containers: deep nesting is "not JSON we accept".
        raise ProtocolError("not-json", str(exc)[:200]) from None

    cls = MESSAGE_TYPES.get(body.type)
    if cls is None:
        raise ProtocolError("unknown-type", repr(body.type[:64]))
    if not _NODE_ID_RE.fullmatch(body.sender):
        raise ProtocolError("bad-sender", "sender is not a node id")
    if not 1 <= body.seq <= SEQ_MAX:
        raise ProtocolError("bad-envelope", f"seq out of range: {body.seq}")
    if not (math.isfinite(body.ts) and body.ts >= 0):
        raise ProtocolError("bad-envelope", "bad timestamp")
    signature = b64decode_strict(envelope.sig, "sig")
    if len(signature) != SIGNATURE_BYTES:
        raise ProtocolError("bad-signature", f"signature is {len(signature)} bytes")
    if not verify_signature(body.sender, signature, bytes(envelope.body)):
        raise ProtocolError("bad-signature", f"from {body.sender[:12]}")
    try:
        data = _DECODERS[body.type].decode(body.data)
    except msgspec.ValidationError as exc:
        raise ProtocolError("bad-payload", f"{body.type}: {exc}") from None
    except RecursionError:
        raise ProtocolError("bad-payload", f"{body.type}: nested too deeply") from None
    data.validate()
    return Message(body.type, body.sender, body.seq, body.ts, data, size)


def _decode_body(raw_body: msgspec.Raw) -> _Body:
    try:
        body = _BODY_DECODER.decode(raw_body)
    except msgspec.ValidationError:
        # A future version may change the body's fields: report the version, not the field.
        try:
            version = _VERSION_DECODER.decode(raw_body).v
        except msgspec.DecodeError:
            raise ProtocolError("bad-envelope", "body has no integer version") from None
        if version != PROTOCOL_VERSION:
            raise ProtocolError("bad-version", f"v={version}") from None
        raise
    if body.v != PROTOCOL_VERSION:
        raise ProtocolError("bad-version", f"v={body.v}")
    return body
