"""The coordinator's SQLite file: ledger, work records and replay marks, one schema."""

from __future__ import annotations

from core.coordinator.schema import MIGRATIONS
from core.coordinator.work_records import WorkRecordsStore


class CoordinatorStore(WorkRecordsStore):
    """The coordinator's SQLite file (WAL, ``synchronous=NORMAL``, as the node's)."""

    migrations = MIGRATIONS
