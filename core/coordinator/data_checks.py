"""The coordinator's own checks of a validator's report, before any comparison.

What it knows without any model: the task's records (so a report naming others is refused),
which of them it holds twice (the duplicates, exactly), how the label counts must add up,
and the integrity of a sample of records it decodes itself. Then ``reports_agree`` compares
two reports within the tolerance of ``kernels.data``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.coordinator.data_registry import DataError
from core.protocol.data import DataReport

Records = Sequence[tuple[str, str, int]]  # (hash, label, size) in the dataset's order


def reports_agree(a: DataReport, b: DataReport) -> bool:
    from kernels.data import ValidationReport
    from kernels.data import reports_agree as agree

    return agree(
        ValidationReport.from_dict(report_dict(a)), ValidationReport.from_dict(report_dict(b))
    )


def report_dict(report: DataReport) -> dict[str, Any]:
    return {
        "invalid": dict(report.invalid),
        "duplicates": dict(report.duplicates),
        "near_duplicates": dict(report.near_duplicates),
        "outliers": list(report.outliers),
        "label_counts": dict(report.label_counts),
        "total": report.total,
    }


def check_report(report: DataReport, records: Records) -> None:
    """What the coordinator can check itself: the records and labels are the task's."""
    if report.total != len(records):
        raise DataError(f"the report covers {report.total} records; the task has {len(records)}")
    hashes = {h for h, _l, _s in records}
    named = (
        set(report.invalid)
        | set(report.duplicates)
        | set(report.duplicates.values())
        | set(report.near_duplicates)
        | set(report.near_duplicates.values())
        | set(report.outliers)
    )
    foreign = sorted(named - hashes)
    if foreign:
        raise DataError(
            f"the report names {len(foreign)} record(s) this task did not give "
            f"(e.g. {foreign[0][:12]})"
        )
    seen: set[str] = set()
    repeated: set[str] = set()
    for h, _label, _size in records:
        (repeated if h in seen else seen).add(h)
    if set(report.duplicates) != repeated:
        odd = sorted(set(report.duplicates) ^ repeated)[0]
        raise DataError(
            f"record {odd[:12]}: the report's duplicates are not the records the task "
            "holds more than once"
        )
    expected: dict[str, int] = {}
    first: set[str] = set()
    for h, label, _size in records:
        if h in first:
            continue
        first.add(h)
        if h not in report.invalid:
            expected[label] = expected.get(label, 0) + 1
    if dict(report.label_counts) != expected:
        raise DataError("the report's label counts do not match its records and findings")


def first_wrong_record(kind: str, report: DataReport, blobs: Mapping[str, bytes]) -> str | None:
    """The first record (of ``blobs``, the sample) whose integrity the coordinator judges
    differently from the report; None when the report is right on all of them. Blocking:
    run it in a thread."""
    from kernels.data import integrity_problem

    for hash_, data in blobs.items():
        bad = integrity_problem(kind, data) is not None
        if bad != (hash_ in report.invalid):
            return hash_
    return None


def accepted_hashes(report: DataReport, records: Records) -> list[str]:
    """Unique, valid, not near-duplicate records (``kernels.data.accepted_records``)."""
    from kernels.data import ValidationReport, accepted_records

    return accepted_records(
        ValidationReport.from_dict(report_dict(report)), [h for h, _l, _s in records]
    )
