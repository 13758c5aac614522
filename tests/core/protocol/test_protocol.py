"""Signed envelopes, the topic tree, the inbound filter and the sequence counter."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import DataDirError, ProtocolError
from core.identity import Identity
from core.protocol import (
    DEFAULT_TOPICS,
    MESSAGE_TYPES,
    Challenge,
    Hello,
    InboundFilter,
    Leaderboard,
    LeaderboardEntry,
    Message,
    Payload,
    Presence,
    Receipt,
    Request,
    Response,
    SequenceCounter,
    TaskUnit,
    Topics,
    WorkCommit,
    WorkProof,
    decode,
    encode,
    presence_messages,
    raw_json,
)

NODE = Identity.generate()
OTHER = Identity.generate()
COORDINATOR = Identity.generate()
T = DEFAULT_TOPICS
NOW = 1_800_000_000.0


def work_proof(size: int = 1024, **changes: Any) -> WorkProof:
    fields: dict[str, Any] = {
        "task_id": "t-1",
        "root": "ab" * 32,
        "proof_b64": base64.b64encode(os.urandom(size)).decode(),
    }
    fields.update(changes)
    return WorkProof(**fields)


SAMPLES: dict[str, Payload] = {
    "hello": Hello(
        name="rig-1",
        version="0.1.0",
        backend="cuda",
        device="NVIDIA RTX 4090",
        gpus=["GPU 0: RTX 4090"],
        claimed_tflops=82.6,
    ),
    "presence": Presence(online=True),
    "work.commit": WorkCommit(task_id="t-1", root="cd" * 32, elapsed_s=1.5),
    "work.proof": work_proof(),
    "receipt": Receipt(
        task_id="t-1",
        recipient=NODE.node_id,
        accepted=True,
        reason="",
        flops=2 * 4096**3,
        credited_base_units=10**18,
        entry_id=7,
    ),
    "task.unit": TaskUnit(
        task_id="t-1",
        recipient=NODE.node_id,
        purpose="work",
        seed="ef" * 32,
        m=4096,
        n=4096,
        k=8192,
        block=8,
        issued_ts=NOW,
        deadline_ts=NOW + 60,
    ),
    "task.challenge": Challenge(
        task_id="t-1", recipient=NODE.node_id, root="cd" * 32, indices=[0, 7, 2**32 - 1]
    ),
    "leaderboard": Leaderboard(
        category="compute",
        season="s1",
        entries=[LeaderboardEntry(rank=1, node_id=NODE.node_id, name="rig-1", amount_base_units=5)],
        updated_ts=NOW,
    ),
    "request": Request(
        request_id="r-1", method="wallet.balance", params={"a": "x", "b": 1, "c": True, "d": None}
    ),
    "response": Response(
        request_id="r-1",
        recipient=NODE.node_id,
        ok=True,
        error="",
        result=raw_json({"balance": 5}),
    ),
}


def signed(identity: Identity, body: bytes | dict[str, Any]) -> bytes:
    """An envelope around arbitrary body bytes, correctly signed (to test body checks)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sig = base64.b64encode(identity.sign(raw))
    return b'{"body":' + raw + b',"sig":"' + sig + b'"}'


def body(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "v": 2,
        "type": "presence",
        "sender": NODE.node_id,
        "seq": 1,
        "ts": NOW,
        "data": {"online": True},
    }
    fields.update(changes)
    return fields


def reason_of(raw: bytes, **kwargs: Any) -> str:
    with pytest.raises(ProtocolError) as info:
        decode(raw, **kwargs)
    assert info.value.reason in ProtocolError.REASONS
    return info.value.reason


# ---------------------------------------------------------------------------------- envelopes


@pytest.mark.parametrize("type_name", sorted(SAMPLES))
def test_every_message_type_round_trips(type_name: str) -> None:
    data = SAMPLES[type_name]
    wire = encode(NODE, 17, type_name, data, ts=NOW)
    message = decode(wire)
    assert message == Message(type_name, NODE.node_id, 17, NOW, data, len(wire))
    assert type(message.data) is MESSAGE_TYPES[type_name]


def test_samples_cover_every_type_defined_in_the_core_payloads_module() -> None:
    own = {
        name for name, cls in MESSAGE_TYPES.items() if cls.__module__ == "core.protocol.payloads"
    }
    assert own and own <= SAMPLES.keys()


def test_wire_is_readable_json_and_signature_covers_the_exact_body_bytes() -> None:
    wire = encode(NODE, 3, "hello", SAMPLES["hello"], ts=NOW)
    envelope = json.loads(wire)
    assert envelope["body"]["sender"] == NODE.node_id
    assert envelope["body"]["data"]["name"] == "rig-1"
    body_bytes = wire[len(b'{"body":') : wire.rindex(b',"sig":"')]
    NODE.private_key.public_key().verify(base64.b64decode(envelope["sig"]), body_bytes)


def test_work_proof_carries_the_proof_bytes() -> None:
    data = work_proof(size=300)
    message = decode(encode(NODE, 1, "work.proof", data))
    assert message.expect(WorkProof).proof_bytes() == base64.b64decode(data.proof_b64)
    with pytest.raises(ProtocolError):
        message.expect(Receipt)


def test_response_result_decodes_into_a_type() -> None:
    message = decode(encode(COORDINATOR, 1, "response", SAMPLES["response"]))
    assert message.expect(Response).result_as(dict[str, int]) == {"balance": 5}
    with pytest.raises(ProtocolError):
        message.expect(Response).result_as(list[str])


def test_tampered_body_is_rejected() -> None:
    wire = encode(NODE, 1, "presence", Presence(online=True), ts=NOW)
    assert reason_of(wire.replace(b'"online":true', b'"online":false')) == "bad-signature"
    assert reason_of(wire.replace(b'"seq":1', b'"seq":2')) == "bad-signature"
    # Re-serialising the body (same JSON value, different bytes) also breaks the signature.
    assert reason_of(wire.replace(b'{"v":2,', b'{"v": 2,')) == "bad-signature"


def test_tampered_or_foreign_signature_is_rejected() -> None:
    wire = encode(NODE, 1, "presence", Presence(online=True), ts=NOW)
    envelope = json.loads(wire)
    sig = bytearray(base64.b64decode(envelope["sig"]))
    sig[0] ^= 1
    forged = wire.replace(envelope["sig"].encode(), base64.b64encode(bytes(sig)))
    assert reason_of(forged) == "bad-signature"
    # Signed by another key while claiming to come from NODE.
    other = encode(OTHER, 1, "presence", Presence(online=True), ts=NOW)
    other_sig = json.loads(other)["sig"].encode()
    assert reason_of(wire.replace(envelope["sig"].encode(), other_sig)) == "bad-signature"
    assert reason_of(wire.replace(envelope["sig"].encode(), b"AAAA")) == "bad-signature"
    assert reason_of(wire.replace(envelope["sig"].encode(), b"not base64!")) == "bad-base64"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not-json"),
        (b"\xff\xfe", "not-json"),
        (b"{", "not-json"),
        (b'{"body":{},"sig":""} trailing', "not-json"),
        (b'{"body":' + b"[" * 5000 + b"]" * 5000 + b',"sig":"x"}', "not-json"),
        (b"[" * 5000 + b"]" * 5000, "bad-envelope"),
        (b"[]", "bad-envelope"),
        (b'{"sig":"x"}', "bad-envelope"),
        (b'{"body":{},"sig":"x","extra":1}', "bad-envelope"),
        (b'{"body":{},"sig":5}', "bad-envelope"),
        (b'{"body":[],"sig":"x"}', "bad-envelope"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, bytes) else value,
)
def test_malformed_envelopes_are_rejected(raw: bytes, reason: str) -> None:
    assert reason_of(raw) == reason


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"v": 1}, "bad-version"),  # protocol v1 nodes speak another protocol
        ({"v": 3, "new_field": 1, "data": None}, "bad-version"),
        ({"v": "1"}, "bad-envelope"),
        ({"type": "no.such.type"}, "unknown-type"),
        ({"sender": "alice"}, "bad-sender"),
        ({"sender": NODE.node_id.upper()}, "bad-sender"),
        ({"seq": 0}, "bad-envelope"),
        ({"seq": 2**64}, "bad-envelope"),
        ({"seq": True}, "bad-envelope"),
        ({"ts": "now"}, "bad-envelope"),
        ({"extra": 1}, "bad-envelope"),
        ({"data": {"online": "yes"}}, "bad-payload"),
        ({"data": {}}, "bad-payload"),
        ({"data": [1]}, "bad-payload"),
        ({"type": "receipt", "data": {"task_id": "w", "recipient": NODE.node_id,
                                      "accepted": True, "reason": "", "flops": 1,
                                      "credited_base_units": -1, "entry_id": None}},
         "bad-payload"),
        ({"type": "receipt", "data": {"task_id": "w", "recipient": NODE.node_id,
                                      "accepted": True, "reason": "", "flops": 1,
                                      "credited_base_units": 1.5, "entry_id": None}},
         "bad-payload"),
        ({"type": "hello", "data": {"name": "x" * 65, "version": "", "backend": "",
                                    "device": "", "gpus": [], "claimed_tflops": 1}},
         "bad-payload"),
        ({"type": "hello", "data": {"name": "ok\x1b]0;pwned\x07", "version": "",
                                    "backend": "", "device": "", "gpus": [],
                                    "claimed_tflops": 1}},
         "bad-payload"),
        ({"type": "hello", "data": {"name": "a\n1. honest - 999999 OMNIT", "version": "",
                                    "backend": "", "device": "", "gpus": [],
                                    "claimed_tflops": 1}},
         "bad-payload"),
        ({"type": "task.unit", "data": {"task_id": "t", "recipient": NODE.node_id,
                                        "purpose": "work", "seed": "ef" * 32, "m": 2**19,
                                        "n": 256, "k": 64, "block": 8, "issued_ts": 1,
                                        "deadline_ts": 2}},
         "bad-payload"),
        ({"type": "task.challenge", "data": {"task_id": "t", "recipient": NODE.node_id,
                                             "root": "cd" * 32, "indices": list(range(65))}},
         "bad-payload"),
        ({"type": "request", "data": {"request_id": "../etc", "method": "a", "params": {}}},
         "bad-payload"),
    ],
)  # fmt: skip
def test_signed_but_invalid_bodies_are_rejected(changes: dict[str, Any], reason: str) -> None:
    fields = body(**changes)
    assert reason_of(signed(NODE, fields)) == reason


def test_unknown_payload_fields_are_ignored_for_forward_compatibility() -> None:
    message = decode(signed(NODE, body(data={"online": True, "since": 5})))
    assert message.data == Presence(online=True)


def test_bad_proof_base64_and_oversized_proofs_are_rejected() -> None:
    data = msgspec.to_builtins(work_proof())
    assert (
        reason_of(signed(NODE, body(type="work.proof", data={**data, "proof_b64": "@@@@"})))
        == "bad-base64"
    )
    assert (
        reason_of(signed(NODE, body(type="work.proof", data={**data, "proof_b64": "QQ="})))
        == "bad-base64"
    )
    huge = base64.b64encode(b"\0" * 70_000).decode()  # over the proof cap
    assert (
        reason_of(signed(NODE, body(type="work.proof", data={**data, "proof_b64": huge})))
        == "bad-payload"
    )
    assert (
        reason_of(signed(NODE, body(type="work.commit", data={"task_id": "t", "root": "xyz",
                                                             "elapsed_s": 1})))
        == "bad-payload"
    )  # fmt: skip


def test_oversized_messages_are_rejected_before_parsing() -> None:
    wire = encode(NODE, 1, "work.proof", work_proof(size=60_000))
    assert reason_of(wire, max_bytes=len(wire) - 1) == "oversized"
    assert reason_of(b"x" * 1_048_577) == "oversized"
    assert decode(wire, max_bytes=len(wire)).seq == 1


def test_encode_refuses_what_receivers_would_drop() -> None:
    with pytest.raises(ValueError, match="invalid"):
        encode(NODE, 1, "receipt", Receipt(task_id="w", recipient=NODE.node_id, accepted=True,
                                          reason="", flops=0, credited_base_units=-5,
                                          entry_id=None))  # fmt: skip
    with pytest.raises(ValueError, match="invalid"):
        encode(NODE, 1, "hello", Hello(name="x", version="", backend="", device="", gpus=[],
                                       claimed_tflops=float("nan")))  # fmt: skip
    with pytest.raises(ValueError, match="invalid"):
        encode(NODE, 1, "work.proof", work_proof(proof_b64="AAA"))
    with pytest.raises(ValueError, match="invalid"):
        encode(NODE, 1, "response", Response(request_id="r", recipient=NODE.node_id, ok=True,
                                            result=msgspec.Raw(b"{")))  # fmt: skip
    with pytest.raises(ValueError, match="unknown message type"):
        encode(NODE, 1, "nope", Presence(online=True))
    with pytest.raises(TypeError):
        encode(NODE, 1, "hello", Presence(online=True))
    with pytest.raises(ValueError, match="seq"):
        encode(NODE, 0, "presence", Presence(online=True))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
body_fields = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 2]) | json_values,
        "type": st.sampled_from(sorted(MESSAGE_TYPES)) | json_values,
        "sender": st.sampled_from([NODE.node_id, "ab"]) | json_values,
        "seq": st.integers(min_value=-5, max_value=2**70) | json_values,
        "ts": st.floats(allow_nan=False) | json_values,
        "data": json_values
        | st.sampled_from([json.loads(msgspec.json.encode(s)) for s in SAMPLES.values()]),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_decode_arbitrary_bytes_only_raises_protocol_error(raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_decode_arbitrary_json_only_raises_protocol_error(value: Any) -> None:
    with pytest.raises(ProtocolError):
        decode(json.dumps(value).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body_fields, st.booleans(), st.sampled_from([b"", b"x", b"sig"]))
def test_fuzz_decode_envelope_shaped_json_only_raises_protocol_error(
    fields: dict[str, Any], sign: bool, sig: bytes
) -> None:
    raw = json.dumps(fields).encode()
    wire = signed(NODE, raw) if sign else b'{"body":' + raw + b',"sig":"' + sig + b'"}'
    try:
        message = decode(wire)
    except ProtocolError:
        return
    # Anything that decodes was signed by NODE and matches its type's schema.
    assert sign and message.sender == NODE.node_id
    assert isinstance(message.data, MESSAGE_TYPES[message.type])


# ------------------------------------------------------------------------------------- topics


def test_topics_build_and_parse() -> None:
    topics = Topics("omnitensor/v1")
    nid = NODE.node_id
    assert topics.node_work(nid) == f"omnitensor/v1/node/{nid}/work"
    assert topics.any_node("work") == "omnitensor/v1/node/+/work"
    assert topics.leaderboard("compute") == "omnitensor/v1/net/leaderboard/compute"
    for leaf in ("presence", "hello", "work", "receipt", "task", "request", "response"):
        info = topics.parse(topics.node(nid, leaf))
        assert info is not None and info.kind == f"node.{leaf}" and info.node_id == nid
    info = topics.parse(topics.leaderboard("compute"))
    assert info is not None and info.category == "compute" and info.spec.retained
    for topic in (topics.coordinator_presence, topics.quests, topics.season, topics.events):
        info = topics.parse(topic)
        assert info is not None and info.spec.origin == "coordinator" and info.spec.retained
    presence = topics.parse(topics.node_presence(nid))
    assert presence is not None and presence.spec.retained and presence.spec.qos == 1
    work = topics.parse(topics.node_work(nid))
    assert work is not None and not work.spec.retained and work.spec.qos == 1


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "omnitensor/v1",
        "omnitensor/v3/net/season",
        "omnitensor/v2/node/abc/work",
        f"omnitensor/v2/node/{NODE.node_id}/wallet",
        f"omnitensor/v2/node/{NODE.node_id}/work/extra",
        "omnitensor/v2/net/leaderboard/UPPER",
        "omnitensor/v2/net/leaderboard/+",
        "omnitensor/v2/net/other",
    ],
)
def test_foreign_topics_do_not_parse(topic: str) -> None:
    assert T.parse(topic) is None


def test_topic_builders_refuse_wildcards_and_bad_ids() -> None:
    for bad in ("+", "#", "a/b", NODE.node_id + "/x", ""):
        with pytest.raises(ValueError):
            T.node_work(bad)
    with pytest.raises(ValueError):
        T.leaderboard("a/b")
    with pytest.raises(ValueError):
        Topics("omnitensor/#")


# ----------------------------------------------------------------------------- inbound filter


def message(sender: Identity, seq: int, data: Payload | None = None, ts: float = NOW) -> Message:
    data = data if data is not None else Presence(online=True)
    return decode(encode(sender, seq, data.TYPE, data, ts=ts))


def new_filter(**kwargs: Any) -> InboundFilter:
    kwargs.setdefault("coordinator_ids", {COORDINATOR.node_id})
    return InboundFilter(clock=lambda: NOW, **kwargs)


def test_node_cannot_speak_on_another_nodes_topic() -> None:
    f = new_filter()
    assert f.accept(message(NODE, 1), topic=T.node_presence(NODE.node_id)) is None
    assert f.accept(message(OTHER, 1), topic=T.node_presence(NODE.node_id)) == (
        "sender does not own the topic"
    )
    wr = message(OTHER, 2, work_proof())
    assert f.accept(wr, topic=T.node_work(NODE.node_id)) == "sender does not own the topic"


def test_coordinator_topics_need_the_pinned_coordinator() -> None:
    receipt = SAMPLES["receipt"]
    f = new_filter()
    topic = T.node_receipt(NODE.node_id)
    assert f.accept(message(COORDINATOR, 1, receipt), topic=topic) is None
    # The node itself may not write its own receipts, nor anyone else.
    assert (
        f.accept(message(NODE, 2, receipt), topic=topic) == "sender is not the pinned coordinator"
    )
    board = SAMPLES["leaderboard"]
    lb_topic = T.leaderboard("compute")
    assert f.accept(message(OTHER, 1, board), topic=lb_topic) == (
        "sender is not the pinned coordinator"
    )
    unpinned = new_filter(coordinator_ids=())
    assert unpinned.accept(message(COORDINATOR, 5, board), topic=lb_topic) == (
        "sender is not the pinned coordinator"
    )


def test_message_types_stay_on_their_topics() -> None:
    f = new_filter()
    wr = message(NODE, 1, work_proof())
    assert (
        f.accept(wr, topic=T.node_hello(NODE.node_id)) == "work.proof does not belong on node.hello"
    )
    assert f.accept(wr, topic="somewhere/else") == "unknown topic"


def test_replays_are_rejected_and_each_topic_is_its_own_stream() -> None:
    f = new_filter()
    presence, hello = T.node_presence(NODE.node_id), T.node_hello(NODE.node_id)
    first = message(NODE, 10)
    assert f.accept(first, topic=presence) is None
    assert f.accept(first, topic=presence) == "replayed seq"
    # A lower seq on another topic is fine: MQTT orders messages per topic only.
    assert f.accept(message(NODE, 3, SAMPLES["hello"]), topic=hello) is None
    assert f.high_water == {(NODE.node_id, presence): 10, (NODE.node_id, hello): 3}


def test_reordered_messages_within_the_window_are_accepted_once() -> None:
    f = new_filter(replay_window=8)
    topic = T.node_presence(NODE.node_id)
    for seq in (5, 9, 7, 6):
        assert f.accept(message(NODE, seq), topic=topic) is None, seq
    assert f.accept(message(NODE, 7), topic=topic) == "replayed seq"
    assert f.accept(message(NODE, 100), topic=topic) is None
    assert f.accept(message(NODE, 91), topic=topic) == "replayed or stale seq"
    assert f.accept(message(NODE, 92), topic=topic) is None
    strict = new_filter(replay_window=0)
    assert strict.accept(message(NODE, 5), topic=topic) is None
    assert strict.accept(message(NODE, 4), topic=topic) == "replayed or stale seq"


def test_retained_redelivery_of_the_latest_message_is_accepted() -> None:
    f = new_filter()
    topic = T.node_presence(NODE.node_id)
    latest = message(NODE, 4)
    assert f.accept(latest, topic=topic) is None
    assert f.accept(latest, topic=topic, retained=True) is None
    assert f.accept(latest, topic=topic) == "replayed seq"


def test_the_live_twin_of_a_retained_message_is_accepted_once() -> None:
    """Subscribing while the coordinator publishes: the broker delivers the retained copy,
    then the live publication of the same message. Neither is a replay; a third copy is."""
    f = new_filter()
    topic = T.node_presence(NODE.node_id)
    latest = message(NODE, 4)
    assert f.accept(latest, topic=topic, retained=True) is None
    assert f.accept(latest, topic=topic) is None
    assert f.accept(latest, topic=topic) == "replayed seq"
    # Only the latest retained message has a twin to come: an older seq is a replay.
    assert f.accept(message(NODE, 9), topic=topic, retained=True) is None
    assert f.accept(message(NODE, 10), topic=topic) is None
    assert f.accept(message(NODE, 9), topic=topic) == "replayed seq"


def test_high_water_is_loaded_through_the_hook() -> None:
    calls: list[tuple[str, str]] = []

    def load(sender: str, topic: str) -> int:
        calls.append((sender, topic))
        return 500

    f = new_filter(load_high_water=load)
    topic = T.node_presence(NODE.node_id)
    assert f.accept(message(NODE, 400), topic=topic) == "replayed or stale seq"
    assert f.accept(message(NODE, 500), topic=topic) == "replayed seq"
    assert f.accept(message(NODE, 501), topic=topic) is None
    assert calls == [(NODE.node_id, topic)]


def test_clock_skew_age_and_allow_list() -> None:
    topic = T.node_presence(NODE.node_id)
    f = new_filter(max_future_skew_s=60)
    assert f.accept(message(NODE, 1, ts=NOW + 61), topic=topic) == "timestamp too far in the future"
    assert f.accept(message(NODE, 2, ts=NOW + 59), topic=topic) is None
    aged = new_filter(max_age_s=30)
    assert aged.accept(message(NODE, 1, ts=NOW - 31), topic=topic) == "message too old"
    allow = new_filter(allowed_senders={OTHER.node_id})
    assert allow.accept(message(NODE, 1), topic=topic) == "sender not allowed"


def test_a_rejected_message_does_not_advance_the_high_water() -> None:
    f = new_filter(max_future_skew_s=60)
    topic = T.node_presence(NODE.node_id)
    assert f.accept(message(NODE, 50, ts=NOW + 3600), topic=topic) is not None
    assert f.accept(message(NODE, 2), topic=topic) is None


def test_every_drop_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    f = new_filter()
    topic = T.node_presence(NODE.node_id)
    wire = encode(NODE, 1, "presence", Presence(online=True), ts=NOW)
    with caplog.at_level(logging.WARNING, logger="omnitensor.protocol"):
        assert f.receive(wire, topic=topic) is not None
        assert f.receive(wire, topic=topic) is None
        assert f.receive(b"garbage", topic=topic) is None
    lines = [r.getMessage() for r in caplog.records if r.name == "omnitensor.protocol"]
    assert len(lines) == 2
    assert "replayed seq" in lines[0] and topic in lines[0]
    assert "not-json" in lines[1]
    assert f.drops == {"replayed seq": 1, "not-json": 1}


def test_presence_will_is_signed_at_connect_and_passes_after_online(tmp_path: Path) -> None:
    seqs = SequenceCounter(tmp_path / "seq")
    online, offline = presence_messages(NODE, seqs, ts=NOW)
    f = new_filter()
    topic = T.node_presence(NODE.node_id)
    on, off = decode(online), decode(offline)
    assert on.seq < off.seq and on.ts == off.ts
    assert f.accept(on, topic=topic) is None
    assert f.accept(off, topic=topic) is None
    # The next connection's online comes after the old will.
    next_online, _ = presence_messages(NODE, seqs, ts=NOW + 5)
    assert f.accept(decode(next_online), topic=topic) is None


# --------------------------------------------------------------------------- sequence counter


def test_sequence_counter_writes_once_per_block() -> None:
    stored: list[int] = []
    counter = SequenceCounter(
        load=lambda: stored[-1] if stored else None, store=stored.append, block=10,
        clock_floor=False,
    )  # fmt: skip
    values = [counter.next() for _ in range(25)]
    assert values == list(range(1, 26))
    assert stored == [11, 21, 31]
    assert counter.last == 25


def test_sequence_counter_never_reuses_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "seq"
    first = SequenceCounter(path, block=100, clock_floor=False)
    issued = [first.next() for _ in range(150)]
    # "Crash": drop the counter without any shutdown step and start a new one.
    second = SequenceCounter(path, block=100, clock_floor=False)
    after = second.next()
    assert after > max(issued)
    assert after == 201


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=8), st.booleans())
def test_sequence_counter_is_strictly_increasing_across_crashes(
    runs: list[int], clock_floor: bool
) -> None:
    state: dict[str, int] = {}
    issued: list[int] = []
    for count in runs:
        counter = SequenceCounter(
            load=lambda: state.get("v"),
            store=lambda v: state.__setitem__("v", v),
            block=7,
            clock_floor=clock_floor,
        )
        issued += [counter.next() for _ in range(count)]
    assert all(a < b for a, b in itertools.pairwise(issued))


def test_sequence_counter_starts_at_the_clock_when_its_file_is_lost(tmp_path: Path) -> None:
    floor = int(time.time() * 1000)
    counter = SequenceCounter(tmp_path / "seq")
    assert counter.next() >= floor  # not 1: receivers would take it for a replay


def test_corrupt_sequence_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "seq"
    path.write_text("garbage")
    with pytest.raises(DataDirError, match="corrupt"):
        SequenceCounter(path)
