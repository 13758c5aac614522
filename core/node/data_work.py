"""A node's side of data contribution and validation, over any command client.

``contribute`` reads a dataset (``kernels.data``), offers its manifest, sends what the
coordinator still needs in pieces that fit one message, and commits; run again after an
interruption, it sends only what is missing. ``validate_one`` takes a validation task,
fetches its records (checking each against its hash), validates them and reports. Kernels
and file reads run in threads: the node's loop (the same process, when the command started
one) keeps its broker session.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from core.api.commands import (
    CommitData,
    GetDataRecords,
    OfferData,
    PutData,
    ReportData,
    Request,
    TakeDataTask,
)
from core.api.data import DataReported, DatasetRegistered, DataTask
from core.errors import CommandError
from core.protocol.data import MAX_PIECE_BYTES, manifest_line, parse_manifest_line, parse_piece

if TYPE_CHECKING:
    import kernels.data as kernels_data  # loaded (with Pillow) only when data is handled

R = TypeVar("R")
Progress = Callable[[str], None]


class Commander(Protocol):
    async def command(self, request: Request[R]) -> R: ...


@dataclass(frozen=True)
class Contribution:
    registered: DatasetRegistered | None  # None: it was registered before this run
    records: int
    bytes_total: int
    bytes_sent: int  # record bytes sent by this run (less when it resumed)
    wire_bytes: int  # what the requests carried: manifest lines and base64 pieces


def _no_progress(_line: str) -> None:
    pass


async def read_local(
    path: Path, kind: str | None, *, max_bytes: int, max_records: int
) -> kernels_data.Dataset:
    """The dataset at ``path``, read and checked; DatasetError (one line) for bad input."""
    from kernels.data import read_dataset

    return await asyncio.to_thread(
        read_dataset, path, kind, max_bytes=max_bytes, max_records=max_records
    )


async def contribute(
    client: Commander,
    dataset: str,
    data: kernels_data.Dataset,
    *,
    licence: str = "",
    progress: Progress = _no_progress,
    stop_after_bytes: int | None = None,
) -> Contribution:
    """Upload and register ``data`` (``read_local``) as ``dataset``.

    ``stop_after_bytes`` stops sending after about that many bytes (tests of resuming).
    """
    lines = [manifest_line(r.hash, r.size, r.label) for r in data.records]
    offered = await client.command(
        OfferData(dataset=dataset, kind=data.kind, records=lines, licence=licence)
    )
    wire = sum(len(line) for line in lines)
    total = data.total_bytes
    if offered.registered:
        progress(f"dataset {dataset} is already registered: nothing to send")
        return Contribution(None, len(data.records), total, 0, wire)
    by_hash = {r.hash: r for r in data.records}
    need = [(h, int(offset)) for h, offset in (line.split(":") for line in offered.need)]
    resumed = sum(offset for _h, offset in need)
    if resumed or len(need) < len(by_hash):
        progress(f"resuming: {len(by_hash) - len(need)} of {len(by_hash)} records already there")
    sent = 0
    batch: list[str] = []
    batch_bytes = 0

    async def flush() -> None:
        nonlocal batch, batch_bytes, wire
        if batch:
            await client.command(PutData(upload_id=offered.upload_id, pieces=batch))
            wire += sum(len(p) for p in batch)
            batch, batch_bytes = [], 0

    for hash_, start in need:
        payload = await asyncio.to_thread(data.payload, by_hash[hash_])
        offset = start
        while offset < len(payload):
            if stop_after_bytes is not None and sent >= stop_after_bytes:
                await flush()
                raise CommandError(f"upload stopped after {sent} bytes (as asked)")
            room = MAX_PIECE_BYTES - batch_bytes
            piece = payload[offset : offset + room]
            batch.append(f"{hash_}:{offset}:{base64.b64encode(piece).decode('ascii')}")
            batch_bytes += len(piece)
            offset += len(piece)
            sent += len(piece)
            if batch_bytes >= MAX_PIECE_BYTES:
                await flush()
                progress(f"sent {sent:,} of {offered.need_bytes:,} bytes")
    await flush()
    registered = await client.command(CommitData(upload_id=offered.upload_id))
    return Contribution(registered, len(data.records), total, sent, wire)


@dataclass(frozen=True)
class Validation:
    task: DataTask
    outcome: DataReported
    report: dict[str, Any]
    wire_bytes: int  # base64 pieces fetched


async def validate_one(
    client: Commander,
    *,
    dataset: str | None,
    kinds: list[str],
    encode: Callable[[list[str]], Any] | None,
    progress: Progress = _no_progress,
    tamper: Callable[[dict[str, Any], list[tuple[str, int, str]]], dict[str, Any]] | None = None,
) -> Validation | None:
    """Take a task, validate it and report; None when no dataset needs this validator.

    ``tamper`` changes the report before it is sent (tests of a dishonest validator).
    """
    from kernels.data import validate_records

    task = await client.command(TakeDataTask(dataset=dataset, kinds=kinds))
    if task.task_id is None:
        progress(task.message)
        return None
    records = [parse_manifest_line(line) for line in task.records]
    progress(f"task {task.task_id}: {len(records)} records of {task.dataset} ({task.kind})")
    blobs, wire = await _fetch(client, task.task_id, records)
    items = [(h, label, blobs[h]) for h, _size, label in records]
    report = await asyncio.to_thread(
        lambda: validate_records(
            task.kind, items, encode=encode if task.kind.startswith("text") else None
        ).to_dict()
    )
    if tamper is not None:
        report = tamper(report, records)
    outcome = await client.command(
        ReportData(task_id=task.task_id, report=json.dumps(report, sort_keys=True))
    )
    return Validation(task, outcome, report, wire)


async def _fetch(
    client: Commander, task_id: str, records: list[tuple[str, int, str]]
) -> tuple[dict[str, bytes], int]:
    """Every record's bytes, each checked against its hash (the coordinator is not trusted
    to serve the right bytes either: a wrong record would make this report disagree)."""
    sizes = {h: size for h, size, _label in records}
    parts: dict[str, list[bytes]] = {h: [] for h in sizes}
    have = dict.fromkeys(sizes, 0)
    wire = 0
    while True:
        want = [f"{h}:{have[h]}" for h in sizes if have[h] < sizes[h]][:4000]
        if not want:
            break
        answer = await client.command(GetDataRecords(task_id=task_id, want=want))
        if not answer.pieces:
            raise CommandError(f"task {task_id}: the coordinator sent no records")
        for line in answer.pieces:
            hash_, offset, text = parse_piece(line)
            if hash_ not in sizes or offset != have[hash_]:
                raise CommandError(f"task {task_id}: the coordinator sent an unasked piece")
            piece = base64.b64decode(text)
            parts[hash_].append(piece)
            have[hash_] += len(piece)
            wire += len(line)
    blobs = {hash_: b"".join(pieces) for hash_, pieces in parts.items()}
    # Hashing a dataset's records takes a while: off the loop (the node may share it).
    wrong = await asyncio.to_thread(
        lambda: [h for h, data in blobs.items() if hashlib.sha256(data).hexdigest() != h]
    )
    if wrong:
        raise CommandError(f"task {task_id}: record {wrong[0][:12]} does not match its hash")
    return blobs, wire
