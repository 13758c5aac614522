"""Datasets contributed to the network: uploads (resumable, content-addressed) and the registry.

A contributor offers a manifest (one line per record: SHA-256, size, label), sends the bytes
the coordinator lacks in pieces and commits. Pieces are kept per upload until a record's
bytes are complete and hash to its name; only then do they become a blob (one copy per hash,
whatever the datasets holding it). A commit registers the dataset in one transaction, or not
at all: nothing is half-registered, and an interrupted upload resumes where it stopped
because ``data.offer`` answers with what is still needed. Each contributor has one upload in
progress (a new one replaces it), so stale pieces cannot pile up.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiosqlite

from core.coordinator.state import CoordinatorState
from core.identity import short_id
from core.protocol.data import (
    MAX_PIECE_BYTES,
    MAX_RECORD_BYTES,
    DataCommitParams,
    DataOfferParams,
    DataPutParams,
    parse_manifest_line,
    parse_piece,
)

UPLOAD_TTL_S = 7 * 86_400  # an upload not committed within a week is forgotten


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DataError(ValueError):
    """A data request refused; the message is the answer's error line."""


@dataclass(frozen=True)
class Upload:
    upload_id: str
    contributor: str
    dataset: str
    kind: str
    licence: str
    manifest: tuple[tuple[str, int, str], ...]  # (hash, size, label) in the dataset's order

    def sizes(self) -> dict[str, int]:
        return {h: size for h, size, _label in self.manifest}


def upload_id_for(contributor: str, params: DataOfferParams) -> str:
    """The same offer from the same node is the same upload: that is what makes it resumable."""
    digest = hashlib.sha256()
    for part in (contributor, params.dataset, params.kind, params.licence, *params.records):
        digest.update(part.encode("utf-8") + b"\n")
    return "up-" + digest.hexdigest()[:32]


class DataRegistry:
    """``data.offer``, ``data.put``, ``data.commit`` and the registry's reads."""

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state

    @property
    def db(self) -> aiosqlite.Connection:
        return self.state.store.db

    # -- uploads ---------------------------------------------------------------------------

    async def offer(self, sender: str, params: DataOfferParams, now: float) -> dict[str, Any]:
        rules = self.state.game.rules.data
        manifest = tuple(parse_manifest_line(line) for line in params.records)
        if len(manifest) > rules.max_dataset_records:
            raise DataError(
                f"dataset {params.dataset}: {len(manifest)} records, over this network's limit "
                f"of {rules.max_dataset_records}"
            )
        sizes: dict[str, int] = {}
        for hash_, size, _label in manifest:
            if not 1 <= size <= MAX_RECORD_BYTES:
                raise DataError(f"record {hash_[:12]}: size {size} outside 1..{MAX_RECORD_BYTES}")
            if sizes.setdefault(hash_, size) != size:
                raise DataError(f"record {hash_[:12]}: listed twice with different sizes")
        total = sum(size for _h, size, _l in manifest)
        if total > rules.max_dataset_bytes:
            raise DataError(
                f"dataset {params.dataset}: {total:,} bytes, over this network's limit of "
                f"{rules.max_dataset_bytes >> 20} MiB"
            )
        upload_id = upload_id_for(sender, params)
        registered = await self._dataset_row(params.dataset)
        if registered is not None:
            if registered["contributor"] == sender and registered["upload_id"] == upload_id:
                return {"upload_id": upload_id, "registered": True, "need": [], "need_bytes": 0}
            raise DataError(
                f"dataset {params.dataset} is already registered (by "
                f"{short_id(registered['contributor'])}): choose another name"
            )
        async with self.state.store.transaction() as db:
            async with db.execute(
                "SELECT upload_id FROM data_uploads WHERE contributor = ?", (sender,)
            ) as cur:
                row = await cur.fetchone()
            if row is not None and row[0] != upload_id:  # a new upload replaces the last one
                await db.execute("DELETE FROM data_parts WHERE upload_id = ?", (row[0],))
                await db.execute("DELETE FROM data_uploads WHERE upload_id = ?", (row[0],))
            if row is None or row[0] != upload_id:
                await self._make_room(db, total, now)
                await db.execute(
                    "INSERT INTO data_uploads (upload_id, contributor, dataset, kind, licence,"
                    " manifest, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        upload_id,
                        sender,
                        params.dataset,
                        params.kind,
                        params.licence,
                        json.dumps(params.records),
                        now,
                    ),
                )
        need = await self._needed(upload_id, sizes)
        return {
            "upload_id": upload_id,
            "registered": False,
            "need": [f"{h}:{offset}" for h, offset in need],
            "need_bytes": sum(sizes[h] - offset for h, offset in need),
        }

    async def _make_room(self, db: aiosqlite.Connection, total: int, now: float) -> None:
        """Forget uploads abandoned for a week; refuse a new one the staging space cannot
        hold (identities are cheap: one upload each is not a bound on its own)."""
        async with db.execute(
            "SELECT upload_id FROM data_uploads WHERE created_ts < ?", (now - UPLOAD_TTL_S,)
        ) as cur:
            stale = [r[0] for r in await cur.fetchall()]
        for upload_id in stale:
            await db.execute("DELETE FROM data_parts WHERE upload_id = ?", (upload_id,))
            await db.execute("DELETE FROM data_uploads WHERE upload_id = ?", (upload_id,))
        async with db.execute("SELECT COALESCE(SUM(length(data)), 0) FROM data_parts") as cur:
            row = await cur.fetchone()
        staged = int(row[0]) if row else 0
        room = self.state.settings.data_staging_bytes
        if staged + total > room:
            raise DataError(
                f"the coordinator's upload space is full ({staged >> 20} of {room >> 20} MiB "
                "held by uploads in progress); try again later"
            )

    async def put(self, sender: str, params: DataPutParams) -> dict[str, Any]:
        upload = await self._upload(sender, params.upload_id)
        sizes = upload.sizes()
        pieces = [parse_piece(line) for line in params.pieces]
        decoded: list[tuple[str, int, bytes]] = []
        for hash_, offset, text in pieces:
            if hash_ not in sizes:
                raise DataError(f"record {hash_[:12]} is not in upload {upload.upload_id}")
            try:
                decoded.append((hash_, offset, base64.b64decode(text, validate=True)))
            except (binascii.Error, ValueError):
                raise DataError(f"record {hash_[:12]}: a piece is not valid base64") from None
        if sum(len(d) for _h, _o, d in decoded) > MAX_PIECE_BYTES:
            raise DataError(f"more than {MAX_PIECE_BYTES} bytes in one data.put")
        stored = 0
        mismatched: list[str] = []
        async with self.state.store.transaction() as db:
            for hash_, offset, data in decoded:
                if await self._has_blob(db, hash_):
                    continue  # another dataset brought these bytes meanwhile
                have = await self._staged(db, upload.upload_id, hash_)
                if offset + len(data) <= have:
                    continue  # a piece sent again after a lost answer
                if offset != have:
                    raise DataError(f"record {hash_[:12]}: piece at byte {offset}, expected {have}")
                if have + len(data) > sizes[hash_]:
                    raise DataError(f"record {hash_[:12]}: more bytes than its {sizes[hash_]}")
                await db.execute(
                    "INSERT INTO data_parts (upload_id, hash, offset, data) VALUES (?, ?, ?, ?)",
                    (upload.upload_id, hash_, offset, data),
                )
                if have + len(data) == sizes[hash_]:
                    if await self._complete(db, upload.upload_id, hash_):
                        stored += 1
                    else:
                        mismatched.append(hash_)
        if mismatched:
            names = ", ".join(h[:12] for h in mismatched)
            raise DataError(f"record(s) {names}: the bytes do not match the hash; send them again")
        need = await self._needed(upload.upload_id, sizes)
        return {"stored": stored, "need_bytes": sum(sizes[h] - o for h, o in need)}

    async def commit(self, sender: str, params: DataCommitParams, now: float) -> dict[str, Any]:
        upload = await self._upload(sender, params.upload_id)
        sizes = upload.sizes()
        missing = await self._needed(upload.upload_id, sizes)
        if missing:
            raise DataError(
                f"upload {upload.upload_id}: {len(missing)} of {len(sizes)} records not received "
                "yet; run the same contribute-data again to resume"
            )
        labels = Counter(label for _h, _s, label in upload.manifest)
        rules = self.state.game.rules.data
        async with self.state.store.transaction() as db:
            async with db.execute(
                "SELECT contributor FROM datasets WHERE name = ?", (upload.dataset,)
            ) as cur:
                taken = await cur.fetchone()
            if taken is not None:
                raise DataError(
                    f"dataset {upload.dataset} was registered meanwhile (by {short_id(taken[0])})"
                )
            cur = await db.execute(
                "INSERT INTO datasets (name, kind, contributor, upload_id, licence, records, bytes,"
                " labels, state, seats_wanted, registered_ts) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    upload.dataset,
                    upload.kind,
                    sender,
                    upload.upload_id,
                    upload.licence,
                    len(upload.manifest),
                    sum(size for _h, size, _l in upload.manifest),
                    json.dumps(dict(sorted(labels.items()))),
                    rules.validators_per_task,
                    now,
                ),
            )
            dataset_id = cur.lastrowid
            await db.executemany(
                "INSERT INTO dataset_records (dataset_id, ord, hash, label, size)"
                " VALUES (?, ?, ?, ?, ?)",
                [(dataset_id, i, h, label, s) for i, (h, s, label) in enumerate(upload.manifest)],
            )
            await db.execute("DELETE FROM data_uploads WHERE upload_id = ?", (upload.upload_id,))
        return {
            "dataset": upload.dataset,
            "kind": upload.kind,
            "records": len(upload.manifest),
            "labels": dict(sorted(labels.items())),
            "state": "pending",
        }

    async def _upload(self, sender: str, upload_id: str) -> Upload:
        async with self.db.execute(
            "SELECT contributor, dataset, kind, licence, manifest FROM data_uploads"
            " WHERE upload_id = ?",
            (upload_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None or row[0] != sender:
            raise DataError(f"no upload {upload_id} of this node (offer the dataset again)")
        lines = json.loads(row[4])
        return Upload(
            upload_id, row[0], row[1], row[2], row[3], tuple(parse_manifest_line(x) for x in lines)
        )

    async def _needed(self, upload_id: str, sizes: dict[str, int]) -> list[tuple[str, int]]:
        """(hash, bytes already staged) of each record the coordinator has no blob of."""
        async with self.state.store.consistent() as db:
            have: set[str] = set()
            hashes = list(sizes)
            for start in range(0, len(hashes), 500):
                chunk = hashes[start : start + 500]
                marks = ",".join("?" * len(chunk))
                async with db.execute(
                    f"SELECT hash FROM data_blobs WHERE hash IN ({marks})",  # noqa: S608
                    chunk,
                ) as cur:
                    have.update(r[0] for r in await cur.fetchall())
            async with db.execute(
                "SELECT hash, SUM(length(data)) FROM data_parts WHERE upload_id = ? GROUP BY hash",
                (upload_id,),
            ) as cur:
                staged = {r[0]: int(r[1]) for r in await cur.fetchall()}
        return [(h, staged.get(h, 0)) for h in hashes if h not in have]

    @staticmethod
    async def _has_blob(db: aiosqlite.Connection, hash_: str) -> bool:
        async with db.execute("SELECT 1 FROM data_blobs WHERE hash = ?", (hash_,)) as cur:
            return await cur.fetchone() is not None

    @staticmethod
    async def _staged(db: aiosqlite.Connection, upload_id: str, hash_: str) -> int:
        async with db.execute(
            "SELECT COALESCE(SUM(length(data)), 0) FROM data_parts"
            " WHERE upload_id = ? AND hash = ?",
            (upload_id, hash_),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    async def _complete(db: aiosqlite.Connection, upload_id: str, hash_: str) -> bool:
        """Join a record's pieces into its blob when they hash to its name; else drop them."""
        async with db.execute(
            "SELECT data FROM data_parts WHERE upload_id = ? AND hash = ? ORDER BY offset",
            (upload_id, hash_),
        ) as cur:
            data = b"".join(bytes(r[0]) for r in await cur.fetchall())
        await db.execute(
            "DELETE FROM data_parts WHERE upload_id = ? AND hash = ?", (upload_id, hash_)
        )
        # Up to 8 MiB: hashed off the event loop (the other requests keep being answered).
        if await asyncio.to_thread(sha256_hex, data) != hash_:
            return False
        await db.execute(
            "INSERT OR IGNORE INTO data_blobs (hash, data) VALUES (?, ?)", (hash_, data)
        )
        return True

    # -- the registry ----------------------------------------------------------------------

    async def _dataset_row(self, name: str) -> dict[str, Any] | None:
        async with self.db.execute(
            "SELECT contributor, upload_id FROM datasets WHERE name = ?", (name,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else {"contributor": row[0], "upload_id": row[1]}

    async def records(self, dataset_id: int) -> list[tuple[str, str, int]]:
        """(hash, label, size) of a registered dataset's records, in its order."""
        async with self.db.execute(
            "SELECT hash, label, size FROM dataset_records WHERE dataset_id = ? ORDER BY ord",
            (dataset_id,),
        ) as cur:
            return [(r[0], r[1], int(r[2])) for r in await cur.fetchall()]

    async def blob_slice(self, hash_: str, offset: int, length: int) -> bytes:
        """``length`` bytes of a record from ``offset`` (b"" when the coordinator has none)."""
        async with self.db.execute(
            "SELECT substr(data, ?, ?) FROM data_blobs WHERE hash = ?", (offset + 1, length, hash_)
        ) as cur:
            row = await cur.fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""

    async def blobs(self, hashes: list[str]) -> dict[str, bytes]:
        """Record bytes by hash (those the coordinator has)."""
        found: dict[str, bytes] = {}
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                f"SELECT hash, data FROM data_blobs WHERE hash IN ({marks})",  # noqa: S608
                chunk,
            ) as cur:
                found.update((r[0], bytes(r[1])) for r in await cur.fetchall())
        return found
