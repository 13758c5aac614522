"""The node's worker takes nothing from the network on trust: size caps, deadlines, outbox."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from core.node.store import NodeStore, ReceivedUnit
from core.node.worker import MAX_UNIT_BYTES_HOST, Worker, unit_bytes
from core.protocol import MAX_MESSAGE_BYTES, SequenceCounter, TaskUnit

NODE_ID = "ab" * 32


class FakeNode:
    """The NodeContext surface the worker uses, recording its log."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        self.identity = None
        self.backend_name = "numpy"
        self.lines: list[str] = []

    async def emit_log(self, level: Any, kind: str, message: str, data: Any = None) -> None:
        self.lines.append(message)


def task(**changes: Any) -> TaskUnit:
    fields: dict[str, Any] = {
        "task_id": "t1",
        "recipient": NODE_ID,
        "purpose": "work",
        "seed": "ef" * 32,
        "m": 512,
        "n": 512,
        "k": 1024,
        "block": 16,
        "issued_ts": time.time(),
        "deadline_ts": time.time() + 60,
    }
    fields.update(changes)
    return TaskUnit(**fields)


async def test_units_over_the_caps_or_late_are_refused_unrun(tmp_path: Path) -> None:
    async with NodeStore(tmp_path / "n.db") as store:
        node = FakeNode(store)
        worker = Worker(node, SequenceCounter(), lambda: None)  # type: ignore[arg-type]
        # A unit as an impostor coordinator might send: 2^18 x 2^18 x 2^20, petabytes.
        huge = task(task_id="huge", m=1 << 18, n=1 << 18, k=1 << 20)
        assert unit_bytes(huge.m, huge.n, huge.k) > MAX_UNIT_BYTES_HOST
        await worker.accept(huge)
        await worker.accept(task(task_id="late", deadline_ts=time.time() - 1))
        await worker.accept(task(task_id="odd", m=500))  # not a whole number of tiles
        assert worker.units.empty()
        assert await store.unit("huge") is None and await store.unit("late") is None
        assert any("GiB" in line for line in node.lines)
        assert any("deadline has passed" in line for line in node.lines)
        assert any("multiple" in line for line in node.lines)
        # A unit that fits is kept and queued once, whatever the re-deliveries.
        await worker.accept(task())
        await worker.accept(task())
        assert worker.units.qsize() == 1
        assert await store.unit("t1") == ReceivedUnit(
            "t1", "work", "ef" * 32, 512, 512, 1024, 16, *_times(await store.unit("t1"))
        )


def _times(unit: ReceivedUnit | None) -> tuple[float, float]:
    assert unit is not None
    return unit.issued_ts, unit.deadline_ts


async def test_the_outbox_refuses_messages_over_the_cap(tmp_path: Path) -> None:
    async with NodeStore(tmp_path / "n.db") as store:
        await store.add_unit(ReceivedUnit("t1", "work", "ef" * 32, 512, 512, 64, 16, 0, 1e12))
        with pytest.raises(ValueError, match="over the message cap"):
            await store.advance_unit("t1", "proved", "x", b"0" * (MAX_MESSAGE_BYTES + 1))
        assert await store.outbox() == []
