"""The coordinator's own checks of a validation report (no network, no store)."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from core.coordinator.data_checks import accepted_hashes, check_report, first_wrong_record
from core.coordinator.data_registry import DataError
from core.protocol.data import DataReport


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


RECORDS = [(h("a"), "x", 1), (h("b"), "x", 1), (h("a"), "x", 1), (h("c"), "y", 1)]


def test_an_honest_report_passes() -> None:
    report = DataReport(duplicates={h("a"): h("a")}, label_counts={"x": 2, "y": 1}, total=4)
    check_report(report, RECORDS)
    assert accepted_hashes(report, RECORDS) == [h("a"), h("b"), h("c")]


@pytest.mark.parametrize(
    ("report", "why"),
    [
        (DataReport(label_counts={"x": 2, "y": 1}, total=3), "covers 3 records"),
        (DataReport(duplicates={}, label_counts={"x": 2, "y": 1}, total=4), "duplicates"),
        (
            DataReport(
                duplicates={h("a"): h("a")},
                invalid={h("zzz"): "bad"},
                label_counts={"x": 2, "y": 1},
                total=4,
            ),
            "did not give",
        ),
        (
            DataReport(duplicates={h("a"): h("a")}, label_counts={"x": 3}, total=4),
            "label counts",
        ),
        (
            # An invalid record must leave the label counts.
            DataReport(
                duplicates={h("a"): h("a")},
                invalid={h("c"): "bad"},
                label_counts={"x": 2, "y": 1},
                total=4,
            ),
            "label counts",
        ),
    ],
)
def test_reports_the_coordinator_can_prove_wrong_are_refused(report: DataReport, why: str) -> None:
    with pytest.raises(DataError, match=why):
        check_report(report, RECORDS)


def test_the_spot_check_finds_a_record_called_wrongly() -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(out, "PNG")
    good, broken = out.getvalue(), b"\x89PNG\r\n\x1a\n broken"
    blobs = {hashlib.sha256(good).hexdigest(): good, hashlib.sha256(broken).hexdigest(): broken}
    kind = "image-classification"
    truthful = DataReport(invalid={hashlib.sha256(broken).hexdigest(): "does not decode"})
    assert first_wrong_record(kind, truthful, blobs) is None
    lazy = DataReport()  # "everything is fine", without looking
    assert first_wrong_record(kind, lazy, blobs) == hashlib.sha256(broken).hexdigest()
    liar = DataReport(invalid={h: "bad" for h in blobs})
    assert first_wrong_record(kind, liar, blobs) == hashlib.sha256(good).hexdigest()
