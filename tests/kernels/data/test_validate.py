"""Validating records: integrity, exact and near duplicates, outliers, agreement."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from kernels.data import (
    IMAGE_NEAR_BITS,
    ValidationReport,
    accepted_records,
    normalized_text,
    phash,
    reports_agree,
    sha256_hex,
    validate_records,
)
from kernels.inference import SentenceEncoder
from tests.kernels.data.conftest import encoded, smooth_image

IMAGE = "image-classification"
TEXT = "text-classification"


def record(data: bytes, label: str) -> tuple[str, str, bytes]:
    return sha256_hex(data), label, data


def text(value: str, label: str) -> tuple[str, str, bytes]:
    return record(value.encode(), label)


def distance(a: bytes, b: bytes) -> int:
    return bin(phash(Image.open(io.BytesIO(a))) ^ phash(Image.open(io.BytesIO(b)))).count("1")


def test_integrity_hash_mismatch_and_label() -> None:
    good = record(encoded(smooth_image(1)), "cat")
    forged = (sha256_hex(b"something else"), "cat", encoded(smooth_image(2)))
    corrupt = record(b"not an image", "cat")
    badlabel = record(encoded(smooth_image(3)), "../etc")
    report = validate_records(IMAGE, [good, forged, corrupt, badlabel])
    assert report.invalid[forged[0]] == "hash mismatch"
    assert report.invalid[corrupt[0]].startswith("not a readable image")
    assert report.invalid[badlabel[0]].startswith("label '../etc' not allowed")
    assert set(report.invalid) == {forged[0], corrupt[0], badlabel[0]}
    assert report.label_counts == {"cat": 1} and report.total == 4
    assert accepted_records(report, [r[0] for r in [good, forged, corrupt, badlabel]]) == [good[0]]


def test_exact_duplicates_first_occurrence_wins() -> None:
    a, b = record(encoded(smooth_image(1)), "cat"), record(encoded(smooth_image(2)), "dog")
    relabelled = (a[0], "dog", a[2])  # the same image sent again under another label
    report = validate_records(IMAGE, [a, b, relabelled, a])
    assert report.duplicates == {a[0]: a[0]}
    assert report.label_counts == {"cat": 1, "dog": 1}
    assert report.near_duplicates == {} and report.invalid == {}
    assert accepted_records(report, [a[0], b[0], a[0], a[0]]) == [a[0], b[0]]


def test_a_forged_copy_of_a_sent_hash_is_a_duplicate_not_paid_twice() -> None:
    a = record(encoded(smooth_image(1)), "cat")
    forged = (a[0], "cat", encoded(smooth_image(2)))
    report = validate_records(IMAGE, [a, forged])
    assert report.duplicates == {a[0]: a[0]} and report.invalid == {}
    assert accepted_records(report, [a[0], a[0]]) == [a[0]]


def test_image_near_duplicates() -> None:
    original = smooth_image(10, size=64)
    png = encoded(original)
    copies = {
        "jpeg": encoded(original, "JPEG", quality=40),
        "half": encoded(original.resize((32, 32), Image.Resampling.BILINEAR)),
        "bigger-jpeg": encoded(original.resize((96, 96)), "JPEG", quality=70),
    }
    distinct = [encoded(smooth_image(seed, size=64)) for seed in range(11, 31)]
    for name, copy in copies.items():
        assert distance(png, copy) <= IMAGE_NEAR_BITS, name
    records = [record(png, "a")] + [record(c, "a") for c in copies.values()]
    records += [record(d, "b") for d in distinct]
    report = validate_records(IMAGE, records)
    assert report.near_duplicates == {sha256_hex(c): sha256_hex(png) for c in copies.values()}
    assert report.label_counts == {"a": 4, "b": 20}
    hashes = [r[0] for r in records]
    assert accepted_records(report, hashes) == [hashes[0], *hashes[4:]]


def test_random_noise_images_are_not_near_duplicates() -> None:
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)) for _ in range(20)]
    report = validate_records(IMAGE, [record(encoded(im), "n") for im in noise])
    assert report.near_duplicates == {} and report.label_counts == {"n": 20}


def test_blocks_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    # Near pairs that straddle row blocks are found as in one block.
    images = [encoded(smooth_image(s)) for s in range(8)]
    copies = [encoded(Image.open(io.BytesIO(d)), "JPEG", quality=80) for d in images]
    records = [record(d, "x") for d in images + copies]
    whole = validate_records(IMAGE, records)
    monkeypatch.setattr("kernels.data.validate.BLOCK_ROWS", 3)
    assert validate_records(IMAGE, records) == whole
    assert len(whole.near_duplicates) == 8


def test_text_needs_an_encoder_and_a_known_kind() -> None:
    with pytest.raises(ValueError, match="encoder"):
        validate_records(TEXT, [text("hi", "a")])
    with pytest.raises(ValueError, match="unknown"):
        validate_records("audio", [])


def test_normalized_text() -> None:
    assert normalized_text("THE Cat,  sat!!") == normalized_text("the cat sat") == "the cat sat"
    assert normalized_text("\uff23\uff41\uff54") == "cat"  # full-width letters (NFKC)
    assert normalized_text("🙂!") == ""


TOPICS = {
    "sports": [
        "The striker scored twice in the second half.",
        "The home team won the championship final.",
        "She broke the world record in the 100 metres.",
        "The coach was sacked after five straight defeats.",
    ],
    "cooking": [
        "Simmer the sauce for twenty minutes.",
        "Knead the dough until it is smooth.",
        "Season the chicken with salt and pepper.",
        "Chop the onions finely before frying them.",
    ],
    "weather": [
        "Heavy rain is expected tomorrow morning.",
        "Temperatures will drop below freezing tonight.",
        "A storm warning has been issued for the coast.",
        "Snow is forecast for the mountains this weekend.",
    ],
}


def topic_records() -> list[tuple[str, str, bytes]]:
    return [text(t, label) for label, texts in TOPICS.items() for t in texts]


def test_text_near_duplicates_and_outliers(encoder: SentenceEncoder) -> None:
    records = topic_records()
    near_copies = [
        text("the striker scored twice in the second half!!!", "sports"),  # punctuation
        text("SIMMER THE SAUCE FOR 20 MINUTES", "cooking"),  # case, a number for a word
        text("Tomorrow morning heavy rain is expected.", "weather"),  # word order
    ]
    misplaced = text("The goalkeeper saved a penalty in extra time.", "weather")
    records += [*near_copies, misplaced, text("The price went up.", "cooking")]
    records += [text("The price went down.", "cooking")]  # a different fact: kept
    report = validate_records(TEXT, records, encode=encoder.encode)
    originals = [records[0][0], records[4][0], records[8][0]]
    assert report.near_duplicates == {
        copy[0]: original for copy, original in zip(near_copies, originals, strict=True)
    }
    assert report.outliers == (misplaced[0],)
    assert report.label_counts == {"cooking": 7, "sports": 5, "weather": 6}
    assert report.invalid == {} and report.duplicates == {}


def test_text_duplicates_across_labels(encoder: SentenceEncoder) -> None:
    records = [*topic_records(), text("Knead the dough until it is smooth.", "sports")]
    report = validate_records(TEXT, records, encode=encoder.encode)
    assert report.duplicates == {records[5][0]: records[5][0]}
    assert report.label_counts == {"cooking": 4, "sports": 4, "weather": 4}
    assert report.outliers == ()  # the relabelled copy is a duplicate, never an outlier


def test_reports_are_deterministic_and_travel_as_json(encoder: SentenceEncoder) -> None:
    records = [*topic_records(), text("the coach was sacked after five straight defeats", "x")]
    records.append((sha256_hex(b"\xff\xfe"), "a", b"\xff\xfe"))
    first = validate_records(TEXT, records, encode=encoder.encode)
    assert first == validate_records(TEXT, records, encode=encoder.encode)
    assert first.invalid == {sha256_hex(b"\xff\xfe"): "not UTF-8 (byte 0)"}
    wire = json.dumps(first.to_dict())
    assert wire == json.dumps(first.to_dict(), sort_keys=True)
    assert ValidationReport.from_dict(json.loads(wire)) == first
    assert reports_agree(first, ValidationReport.from_dict(json.loads(wire)))


def test_from_dict_refuses_malformed_reports() -> None:
    good = ValidationReport(label_counts={"a": 1}, total=1).to_dict()
    assert ValidationReport.from_dict(good).label_counts == {"a": 1}
    bad: object
    for bad in (
        {**good, "total": -1},
        {**good, "total": True},
        {**good, "outliers": "abc"},
        {**good, "invalid": {"h": 3}},
        {**good, "label_counts": {"a": "1"}},
        {**good, "label_counts": {"a": -1}},
        [],
    ):
        with pytest.raises(ValueError, match="report"):
            ValidationReport.from_dict(bad)  # type: ignore[arg-type]


def test_reports_agree_tolerates_a_few_borderline_calls() -> None:
    base = ValidationReport(
        invalid={"i": "not a readable image (x)"},
        duplicates={"d": "d"},
        near_duplicates={f"n{i}": "o" for i in range(5)},
        outliers=("o1",),
        label_counts={"a": 100, "b": 99},
        total=200,  # tolerance: max(1, 2% of 200) = 4
    )

    def changed(**fields: object) -> ValidationReport:
        return ValidationReport(**{**base.__dict__, **fields})  # type: ignore[arg-type]

    assert reports_agree(base, changed(invalid={"i": "another decoder message"}))
    near = {f"n{i}": "o" for i in range(1, 8)}  # n0 gone, n5-n7 new: 4 differ
    assert reports_agree(base, changed(near_duplicates=near))
    assert not reports_agree(base, changed(near_duplicates={**near, "n9": "o"}))
    assert reports_agree(base, changed(outliers=("o2", "o3", "o4")))
    assert not reports_agree(base, changed(outliers=("o2", "o3", "o4", "o5")))
    assert not reports_agree(base, changed(invalid={"j": "x"}))
    assert not reports_agree(base, changed(duplicates={}))
    assert not reports_agree(base, changed(label_counts={"a": 100, "b": 98}))
    assert not reports_agree(base, changed(total=201))
    small = ValidationReport(total=10)
    assert reports_agree(small, ValidationReport(outliers=("x",), total=10))
    assert not reports_agree(small, ValidationReport(outliers=("x", "y"), total=10))


def angle_encoder(texts: list[str]) -> np.ndarray:
    """A stand-in encoder: text "<degrees>" is the unit vector at that angle in a plane."""
    radians = np.radians([float(t.split()[0]) for t in texts])
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


@pytest.mark.parametrize(("angle", "flagged"), [(60, True), (50, False)])
def test_outlier_margin_leaves_the_record_out_of_its_own_centroid(
    angle: int, flagged: bool
) -> None:
    # Label a: two records along x and one at `angle`; label b: three records along y.
    # Without itself, a's centroid is x: the margin is sin - cos, 0.37 at 60 degrees
    # (flagged) and 0.12 at 50 (not). Were the record left in its own centroid, 60 degrees
    # would score 0.11 and not be flagged.
    records = [text(t, "a") for t in ("0 one", "0 two", f"{angle} odd")]
    records += [text(f"90 {word}", "b") for word in ("one", "two", "three")]
    report = validate_records(TEXT, records, encode=angle_encoder)
    assert report.outliers == ((records[2][0],) if flagged else ())
    # Records at the same angle are near duplicates (cosine 1): the later ones are listed.
    assert set(report.near_duplicates) == {records[1][0], records[4][0], records[5][0]}


def test_outliers_need_three_records_in_a_label() -> None:
    records = [text("0 one", "a"), text("60 odd", "a")]
    records += [text(f"90 {word}", "b") for word in ("one", "two", "three")]
    assert validate_records(TEXT, records, encode=angle_encoder).outliers == ()
