"""What the network answers about datasets: uploads, the registry, validation tasks.

The coordinator's JSON (``core.coordinator.data_registry`` and ``data_tasks``) decoded at the
node's boundary, like ``core.api.network``. Money is int base units.
"""

from __future__ import annotations

import msgspec


class DataOffered(msgspec.Struct, frozen=True, kw_only=True):
    """``data.offer``: the upload, and each record still needed as ``HASH:BYTES_RECEIVED``."""

    upload_id: str
    registered: bool  # this very dataset is registered already: nothing to send
    need: tuple[str, ...]
    need_bytes: int


class DataStored(msgspec.Struct, frozen=True, kw_only=True):
    """``data.put``: records completed by these pieces, bytes the upload still needs."""

    stored: int
    need_bytes: int


class DatasetRegistered(msgspec.Struct, frozen=True, kw_only=True):
    dataset: str
    kind: str
    records: int
    labels: dict[str, int]
    state: str


class DataTask(msgspec.Struct, frozen=True, kw_only=True):
    """A validation task (``task_id`` None: nothing to validate now, ``message`` says why)."""

    task_id: str | None
    message: str = ""
    dataset: str = ""
    kind: str = ""
    records: tuple[str, ...] = ()  # HASH:SIZE:LABEL in the dataset's order
    deadline_ts: float = 0.0


class DataPieces(msgspec.Struct, frozen=True, kw_only=True):
    pieces: tuple[str, ...]  # HASH:OFFSET:BASE64


class DataReported(msgspec.Struct, frozen=True, kw_only=True):
    """What the report led to: ``waiting``, ``disputed``, ``validated`` or ``failed``."""

    task_id: str
    state: str
    message: str


class ValidatorSeat(msgspec.Struct, frozen=True, kw_only=True):
    node_id: str
    state: str  # open, reported, agreed, disagreed, expired, closed


class DatasetInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str
    contributor: str
    contributor_name: str
    licence: str
    records: int
    bytes: int
    labels: dict[str, int]
    state: str  # pending, validated, failed
    registered_ts: float
    validated_ts: float | None
    accepted: int  # unique, valid records the accepted report leaves
    paid_records: int
    validators: tuple[ValidatorSeat, ...]


class DataTaskInfo(msgspec.Struct, frozen=True, kw_only=True):
    task_id: str
    dataset: str
    state: str
    deadline_ts: float
    records: int


class UploadInfo(msgspec.Struct, frozen=True, kw_only=True):
    dataset: str
    upload_id: str


class DatasetList(msgspec.Struct, frozen=True, kw_only=True):
    """The registry, and this node's part: its seats, an upload in progress, data earnings."""

    datasets: tuple[DatasetInfo, ...]
    tasks: tuple[DataTaskInfo, ...]
    earned: int
    upload: UploadInfo | None
    ts: float
