"""The hostile participant: a client that signs whatever it likes with keys it makes.

Every attack in tests/adversarial runs against the real coordinator on a real Mosquitto,
with an honest node doing real work beside it. ``Hostile`` speaks the wire protocol directly
(aiomqtt, our envelope), so it can send what the node code never would: claims, floods,
other nodes' task ids, garbage roots, control characters.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from core.coordinator.service import Coordinator, CoordinatorSettings
from core.identity import Identity
from core.node.service import Node
from core.protocol import (
    DEFAULT_TOPICS,
    PROTOCOL_VERSION,
    Challenge,
    Hello,
    Message,
    Payload,
    Presence,
    Receipt,
    Request,
    Response,
    TaskUnit,
    WorkCommit,
    WorkProof,
    decode,
    encode,
)
from core.transport.mqtt import cancel_and_wait
from kernels.backend import numpy_backend
from kernels.work_proof import encode_proof
from kernels.work_spec import WorkSpec
from kernels.work_unit import UnitResult, answer, compute_unit
from tests.helpers.broker import MosquittoProcess, mosquitto
from tests.integration.test_network import node_for, wait_until

__all__ = ["Hostile", "Network", "mosquitto", "network"]

pytestmark = pytest.mark.broker


def spec_of(task: TaskUnit, seed: bytes | None = None) -> WorkSpec:
    return WorkSpec(seed or bytes.fromhex(task.seed), task.m, task.n, task.k, task.block)


class Hostile:
    """One identity on the broker, speaking the protocol by hand."""

    def __init__(self, url_port: int, identity: Identity | None = None) -> None:
        self.port = url_port
        self.identity = identity or Identity.generate()
        self.seq = 0
        self.inbox: list[Message] = []
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    async def __aenter__(self) -> Hostile:
        self._client = aiomqtt.Client(
            "127.0.0.1", self.port, identifier=f"hostile-{secrets.token_hex(6)}"
        )
        await self._client.__aenter__()
        for topic in (
            DEFAULT_TOPICS.node_task(self.node_id),
            DEFAULT_TOPICS.node_receipt(self.node_id),
            DEFAULT_TOPICS.node_response(self.node_id),
        ):
            await self._client.subscribe(topic, qos=1)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            await cancel_and_wait(self._reader)
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)

    async def subscribe(self, topic: str) -> None:
        assert self._client is not None
        await self._client.subscribe(topic, qos=1)

    async def _read(self) -> None:
        assert self._client is not None
        async for message in self._client.messages:
            payload = message.payload
            if isinstance(payload, bytes | bytearray):
                with contextlib.suppress(Exception):
                    self.inbox.append(decode(payload))

    def wire(self, data: Payload) -> bytes:
        self.seq += 1
        return encode(self.identity, self.seq, data.TYPE, data)

    async def send(self, topic: str, data: Payload, *, retain: bool = False) -> None:
        assert self._client is not None
        await self._client.publish(topic, self.wire(data), qos=1, retain=retain)

    async def send_raw(self, topic: str, type_name: str, data: dict[str, Any]) -> None:
        """A correctly signed envelope around any data, bypassing the encoder's checks."""
        assert self._client is not None
        self.seq += 1
        body = json.dumps(
            {
                "v": PROTOCOL_VERSION,
                "type": type_name,
                "sender": self.node_id,
                "seq": self.seq,
                "ts": time.time(),
                "data": data,
            }
        ).encode()
        sig = base64.b64encode(self.identity.sign(body))
        await self._client.publish(topic, b'{"body":' + body + b',"sig":"' + sig + b'"}', qos=1)

    async def hello(self, name: str = "hostile", claimed_tflops: float = 0.0) -> None:
        await self.send(DEFAULT_TOPICS.node_presence(self.node_id), Presence(online=True))
        await self.send(
            DEFAULT_TOPICS.node_hello(self.node_id),
            Hello(
                name=name,
                version="0.1.0",
                backend="cupy",
                device="NVIDIA H100 (honest!)",
                gpus=["H100"],
                claimed_tflops=claimed_tflops,
            ),
            retain=True,
        )

    async def request(self, method: str, **params: Any) -> Response:
        request_id = secrets.token_hex(6)
        await self.send(
            DEFAULT_TOPICS.node_request(self.node_id),
            Request(request_id=request_id, method=method, params=params),
        )
        found = await self.wait_for(
            lambda m: isinstance(m.data, Response) and m.data.request_id == request_id
        )
        assert isinstance(found.data, Response)
        return found.data

    def received(self, kind: type[Any]) -> list[Any]:
        return [m.data for m in self.inbox if isinstance(m.data, kind)]

    async def wait_for(self, match: Callable[[Message], bool], within: float = 20.0) -> Message:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            for message in self.inbox:
                if match(message):
                    return message
            await asyncio.sleep(0.05)
        raise AssertionError("timed out waiting for a message")

    async def next_unit(self, seen: set[str] | None = None, within: float = 20.0) -> TaskUnit:
        seen = set() if seen is None else seen
        found = await self.wait_for(
            lambda m: isinstance(m.data, TaskUnit) and m.data.task_id not in seen, within
        )
        assert isinstance(found.data, TaskUnit)
        return found.data

    async def commit(self, task: TaskUnit, result: UnitResult) -> Challenge:
        await self.send(
            DEFAULT_TOPICS.node_work(self.node_id),
            WorkCommit(task_id=task.task_id, root=result.root.hex(), elapsed_s=0.01),
        )
        found = await self.wait_for(
            lambda m: isinstance(m.data, Challenge) and m.data.task_id == task.task_id
        )
        assert isinstance(found.data, Challenge)
        return found.data

    async def prove(self, task: TaskUnit, result: UnitResult, challenge: Challenge) -> Receipt:
        proof = encode_proof(answer(result, challenge.indices))
        await self.send(
            DEFAULT_TOPICS.node_work(self.node_id),
            WorkProof(
                task_id=task.task_id,
                root=result.root.hex(),
                proof_b64=base64.b64encode(proof).decode(),
            ),
        )
        found = await self.wait_for(
            lambda m: isinstance(m.data, Receipt) and m.data.task_id == task.task_id
        )
        assert isinstance(found.data, Receipt)
        return found.data

    async def do_unit(self, task: TaskUnit, *, honest: bool = True) -> Receipt:
        """Answer a unit: the real work, or work on other operands (skipped work)."""
        spec = spec_of(task, None if honest else bytes(32))
        result = await asyncio.to_thread(compute_unit, numpy_backend(), spec)
        challenge = await self.commit(task, result)
        return await self.prove(task, result, challenge)


@dataclass
class Network:
    coordinator: Coordinator
    honest: Node
    broker: MosquittoProcess

    async def credited(self, node_id: str) -> int:
        store = self.coordinator.state.store
        return sum(e.amount for e in await store.entries(node_id, 10_000) if e.amount > 0)


@pytest.fixture
async def network(mosquitto: MosquittoProcess, tmp_path: Path) -> AsyncIterator[Network]:
    settings = CoordinatorSettings(
        data_dir=tmp_path / "coord",
        broker_url=mosquitto.url,
        task_interval_s=0.2,
        unit_seconds=0.3,
        board_interval_s=0.5,
        ghost_after_s=4.0,
    )
    async with Coordinator(settings) as coordinator:
        task = asyncio.create_task(coordinator.run())
        try:
            await asyncio.wait_for(coordinator.connected.wait(), 10)
            # No first benchmark: the coordinator measures the node from its work units, and
            # the local benchmark only costs each test's setup seconds of CPU.
            async with node_for(
                tmp_path / "honest",
                mosquitto.url,
                key=coordinator.node_id,
                name="honest",
                first_benchmark=False,
            ) as honest:
                store = honest.store
                assert store is not None

                async def working() -> bool:
                    return (await store.work_counters())["work.acknowledged"] >= 2

                await wait_until(working, within=60, what="honest node working")
                yield Network(coordinator, honest, mosquitto)
        finally:
            coordinator.close()
            await cancel_and_wait(task)
