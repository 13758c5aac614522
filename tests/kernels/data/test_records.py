"""Reading datasets from disk: both kinds, and every refusal naming the file or line."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from kernels.data import (
    MAX_TEXT_CHARS,
    Dataset,
    DatasetError,
    detect_kind,
    integrity_problem,
    read_dataset,
    sha256_hex,
)
from tests.kernels.data.conftest import encoded, smooth_image

MAX_BYTES = 10_000_000
MAX_RECORDS = 1000


def read(path: Path, kind: str | None = None) -> Dataset:
    return read_dataset(path, kind, max_bytes=MAX_BYTES, max_records=MAX_RECORDS)


def make_images(root: Path, layout: dict[str, int]) -> Path:
    seed = 0
    for label, count in layout.items():
        (root / label).mkdir(parents=True)
        for i in range(count):
            seed += 1
            (root / label / f"{i:03}.png").write_bytes(encoded(smooth_image(seed)))
    return root


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def refused(
    path: Path, match: str, *, max_bytes: int = MAX_BYTES, max_records: int = MAX_RECORDS
) -> DatasetError:
    with pytest.raises(DatasetError, match=match) as info:
        read_dataset(path, max_bytes=max_bytes, max_records=max_records)
    assert "\n" not in str(info.value)
    return info.value


def test_reads_an_image_folder(tmp_path: Path) -> None:
    root = make_images(tmp_path / "ds", {"dog": 2, "cat": 2})
    (root / "cat" / ".DS_Store").write_bytes(b"\0junk")  # OS litter is skipped
    dataset = read(root)
    assert dataset.kind == "image-classification"
    assert [r.name for r in dataset.records] == [
        "cat/000.png",
        "cat/001.png",
        "dog/000.png",
        "dog/001.png",
    ]
    assert [r.label for r in dataset.records] == ["cat", "cat", "dog", "dog"]
    for record in dataset.records:
        data = (root / record.name).read_bytes()
        assert record.hash == sha256_hex(data) and record.size == len(data)
        assert dataset.payload(record) == data
    assert [h for h, _, _ in dataset.items()] == [r.hash for r in dataset.records]


def test_payload_refuses_a_file_changed_since_reading(tmp_path: Path) -> None:
    root = make_images(tmp_path / "ds", {"cat": 1})
    dataset = read(root)
    (root / "cat" / "000.png").write_bytes(encoded(smooth_image(99)))
    with pytest.raises(DatasetError, match=r"000\.png: changed"):
        dataset.payload(dataset.records[0])


def test_reads_a_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(
        '\ufeff{"text": "Bonjour à tous", "label": "greeting"}\n\n'
        '{"text": "Bye now", "label": "farewell", "source": "ignored"}\n',
        encoding="utf-8",
    )
    dataset = read(path)
    assert dataset.kind == "text-classification"
    assert [(r.name, r.label) for r in dataset.records] == [
        ("data.jsonl:1", "greeting"),
        ("data.jsonl:3", "farewell"),
    ]
    first = dataset.records[0]
    assert dataset.payload(first) == "Bonjour à tous".encode()
    assert first.hash == sha256_hex("Bonjour à tous".encode()) and first.size == 15


def test_same_text_under_two_labels_is_one_hash(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"text": "same", "label": "a"}, {"text": "same", "label": "b"}]
    )
    first, second = read(path).records
    assert first.hash == second.hash and first.label != second.label


def test_detect_kind(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n")
    assert detect_kind(tmp_path) == "image-classification"
    assert detect_kind(write_jsonl(tmp_path / "t.JSONL", [])) == "text-classification"
    with pytest.raises(DatasetError, match=r"x\.csv: not a dataset"):
        detect_kind(tmp_path / "x.csv")
    with pytest.raises(DatasetError, match="nope: no such file"):
        detect_kind(tmp_path / "nope")
    with pytest.raises(DatasetError, match="not text-classification"):
        read(tmp_path, "text-classification")


def test_file_at_top_level(tmp_path: Path) -> None:
    root = make_images(tmp_path / "ds", {"cat": 1})
    (root / "stray.png").write_bytes(encoded(smooth_image(5)))
    refused(root, r"ds/stray.png: a file directly in .*ds \(expected .*/<label>/<image>\)")


def test_nested_folder(tmp_path: Path) -> None:
    root = make_images(tmp_path / "ds", {"cat": 1})
    (root / "cat" / "kittens").mkdir()
    refused(root, "cat/kittens: a nested folder")


def test_bad_label_and_extension(tmp_path: Path) -> None:
    root = make_images(tmp_path / "ds", {"two words": 1})
    refused(root, "two words: label 'two words' not allowed")
    root = make_images(tmp_path / "ds2", {"cat": 1})
    (root / "cat" / "notes.txt").write_text("hi")
    refused(root, "cat/notes.txt: not an image file")


def test_non_regular_file(tmp_path: Path) -> None:
    root = make_images(tmp_path / "ds", {"cat": 1})
    os.mkfifo(root / "cat" / "pipe.png")
    refused(root, "cat/pipe.png: not a regular file")


def test_symlink_escaping_is_refused_and_inside_is_allowed(tmp_path: Path) -> None:
    root = make_images(tmp_path / "ds", {"cat": 1, "dog": 1})
    (root / "dog" / "alias.png").symlink_to(root / "cat" / "000.png")
    names = [r.name for r in read(root).records]
    assert names == ["cat/000.png", "dog/000.png", "dog/alias.png"]
    outside = tmp_path / "outside.png"
    outside.write_bytes(encoded(smooth_image(7)))
    (root / "dog" / "escape.png").symlink_to(outside)
    refused(root, "dog/escape.png: symlink escapes")
    (root / "dog" / "escape.png").unlink()
    (root / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    refused(root, "ds/elsewhere: symlink escapes")


def test_corrupt_and_truncated_images(tmp_path: Path) -> None:
    root = make_images(tmp_path / "ds", {"cat": 1})
    good = encoded(smooth_image(3), "JPEG", quality=90)
    (root / "cat" / "cut.jpg").write_bytes(good[: len(good) // 2])
    refused(root, "cat/cut.jpg: not a readable image")
    (root / "cat" / "cut.jpg").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    refused(root, "cat/cut.jpg: not a readable image")


def test_truncated_jpeg_passes_verify_but_not_load() -> None:
    # Pillow's verify() checks nothing in a JPEG: only decoding the pixels finds the cut.
    data = encoded(smooth_image(4, size=64), "JPEG", quality=90)
    cut = data[: len(data) // 2]
    with Image.open(io.BytesIO(cut)) as image:
        image.verify()
    assert integrity_problem("image-classification", data) is None
    assert "truncated" in str(integrity_problem("image-classification", cut))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"text": "ok", "label": "a"\n', "not JSON"),
        (b'["text", "label"]\n', "not a JSON object"),
        (b'{"label": "a"}\n', "no 'text' field"),
        (b'{"text": "hi"}\n', "no 'label' field"),
        (b'{"text": 3, "label": "a"}\n', "'text' is not a string"),
        (b'{"text": "hi", "label": null}\n', "'label' is not a string"),
        (b'{"text": "  ", "label": "a"}\n', "empty text"),
        (b'{"text": "hi", "label": "-a"}\n', "label '-a' not allowed"),
        (b'{"text": "caf\xe9", "label": "a"}\n', r"not UTF-8 \(byte 13\)"),
        (
            ('{"text": "%s", "label": "a"}\n' % ("x" * (MAX_TEXT_CHARS + 1))).encode(),
            "text of 2001 char",
        ),
    ],
    ids=[
        "json",
        "array",
        "no-text",
        "no-label",
        "text-int",
        "label-null",
        "blank",
        "label",
        "utf8",
        "long",
    ],
)
def test_bad_jsonl_lines_name_the_line(tmp_path: Path, line: bytes, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "fine", "label": "a"}\n\n' + line)
    refused(path, f"d.jsonl line 3: {message}")


def test_limits(tmp_path: Path) -> None:
    root = make_images(tmp_path / "ds", {"cat": 3})
    total = sum(p.stat().st_size for p in (root / "cat").iterdir())
    assert len(read_dataset(root, max_bytes=total, max_records=3).records) == 3
    refused(root, f"more than {total - 1} bytes", max_bytes=total - 1)
    refused(root, "more than 2 records", max_records=2)
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "abcd", "label": "a"}] * 3)
    refused(path, "more than 11 bytes", max_bytes=11)
    refused(path, "more than 2 records", max_records=2)


def test_empty_datasets(tmp_path: Path) -> None:
    (tmp_path / "ds" / "cat").mkdir(parents=True)
    refused(tmp_path / "ds", "ds: no records")
    (tmp_path / "e.jsonl").write_text("\n\n")
    refused(tmp_path / "e.jsonl", "e.jsonl: no records")


def test_integrity_problem() -> None:
    image = smooth_image(1)
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP"):
        assert integrity_problem("image-classification", encoded(image, fmt)) is None, fmt
    assert "not a readable image" in str(integrity_problem("image-classification", b"hello"))
    tiff = encoded(image, "TIFF")  # a format Pillow reads, but not one we accept
    assert "not a readable image" in str(integrity_problem("image-classification", tiff))
    assert integrity_problem("text-classification", "héllo".encode()) is None
    assert integrity_problem("text-classification", b"\xff") == "not UTF-8 (byte 0)"
    assert integrity_problem("text-classification", b" \n") == "empty text"
    long = ("é" * (MAX_TEXT_CHARS + 1)).encode()
    assert "at most 2000" in str(integrity_problem("text-classification", long))
    with pytest.raises(ValueError, match="unknown"):
        integrity_problem("audio", b"")


def test_integrity_refuses_huge_images_from_the_header() -> None:
    # A 1-bit 8000x8000 PNG is a few kB on the wire and 64 Mpx decoded.
    bomb = encoded(Image.new("1", (8000, 8000)))
    assert len(bomb) < 100_000
    assert integrity_problem("image-classification", bomb) == "8000x8000 is over 50 megapixels"
