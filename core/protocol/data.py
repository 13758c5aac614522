"""Data contribution and validation: the request parameters (``core.protocol.methods``).

A contributor offers a dataset's manifest (``data.offer``: one ``HASH:SIZE:LABEL`` line per
record, content-addressed by SHA-256), sends the bytes the coordinator does not have yet in
pieces (``data.put``: ``HASH:OFFSET:BASE64``, several small records or part of a big one per
request, inside one message) and registers it (``data.commit``) once every record arrived
and matched its hash. Validators take a task (``data.task``), fetch its records
(``data.get``) and send a report (``data.report``). Request parameters are flat (strings,
integers, lists of strings), so records and pieces travel as patterned strings and a report
as JSON text, each bounded and checked before anything reads it.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec

from core.errors import ProtocolError
from core.protocol.fields import Ident

KINDS: Final = ("image-classification", "text-classification")
# The protocol's ceilings; the coordinator's rules (assets/game.toml [data]) may set less.
MAX_DATASET_RECORDS: Final = 4_000  # a manifest of 4,000 lines is ~0.5 MiB: one message
MAX_RECORD_BYTES: Final = 8 << 20
MAX_PIECE_BYTES: Final = 384 << 10  # raw bytes per data.put / data.get: 512 KiB of base64
MAX_LICENCE_CHARS: Final = 2_000
LABEL_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
DATASET_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

DatasetName = Annotated[str, msgspec.Meta(pattern=DATASET_PATTERN)]
Kind = Annotated[str, msgspec.Meta(pattern="^(image|text)-classification$")]
ManifestLine = Annotated[
    str, msgspec.Meta(max_length=140, pattern=rf"^[0-9a-f]{{64}}:[0-9]{{1,9}}:{LABEL_PATTERN}$")
]
PieceLine = Annotated[
    str,
    msgspec.Meta(
        max_length=80 + 4 * (MAX_PIECE_BYTES // 3 + 1),
        pattern=r"^[0-9a-f]{64}:[0-9]{1,9}:[A-Za-z0-9+/]*={0,2}$",
    ),
]
WantLine = Annotated[str, msgspec.Meta(max_length=80, pattern=r"^[0-9a-f]{64}:[0-9]{1,9}$")]
Licence = Annotated[str, msgspec.Meta(max_length=MAX_LICENCE_CHARS)]
ReportText = Annotated[str, msgspec.Meta(max_length=900_000)]


class DataOfferParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    dataset: DatasetName
    kind: Kind
    records: Annotated[list[ManifestLine], msgspec.Meta(min_length=1, max_length=4_000)]
    licence: Licence = ""


class DataPutParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    upload_id: Ident
    pieces: Annotated[list[PieceLine], msgspec.Meta(min_length=1, max_length=4_000)]


class DataCommitParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    upload_id: Ident


class DataTaskParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    dataset: DatasetName | None = None  # None: any dataset that needs a validator
    kinds: Annotated[list[Kind], msgspec.Meta(max_length=2)] = []  # [] = both


class DataGetParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    task_id: Ident
    want: Annotated[list[WantLine], msgspec.Meta(min_length=1, max_length=4_000)]


class DataReportParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    task_id: Ident
    report: ReportText  # JSON of a ``DataReport``


class DatasetsParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


Hash = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Reason = Annotated[str, msgspec.Meta(max_length=120)]
Label = Annotated[str, msgspec.Meta(pattern=f"^{LABEL_PATTERN}$")]


class DataReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A validator's findings on a task's records (``kernels.data.ValidationReport``)."""

    invalid: dict[Hash, Reason] = {}
    duplicates: dict[Hash, Hash] = {}
    near_duplicates: dict[Hash, Hash] = {}
    outliers: list[Hash] = []
    label_counts: dict[Label, Annotated[int, msgspec.Meta(ge=0, le=MAX_DATASET_RECORDS)]] = {}
    total: Annotated[int, msgspec.Meta(ge=0, le=MAX_DATASET_RECORDS)] = 0  # records received


def manifest_line(hash_: str, size: int, label: str) -> str:
    return f"{hash_}:{size}:{label}"


def parse_manifest_line(line: str) -> tuple[str, int, str]:
    """(hash, size, label) of a line the Struct already checked."""
    hash_, size, label = line.split(":", 2)
    return hash_, int(size), label


def parse_piece(line: str) -> tuple[str, int, str]:
    """(hash, offset, base64 text) of a piece line."""
    hash_, offset, data = line.split(":", 2)
    return hash_, int(offset), data


def parse_report(text: str) -> DataReport:
    """The report a validator sent; ProtocolError when it is not one."""
    try:
        return msgspec.json.decode(text, type=DataReport)
    except msgspec.DecodeError as exc:
        raise ProtocolError("bad-payload", f"data.report: {exc}") from None


_LABEL = re.compile(f"^{LABEL_PATTERN}$")


def is_label(text: str) -> bool:
    return bool(_LABEL.match(text))
