"""Contributed datasets read from disk, and the integrity check a validator runs on bytes.

Two kinds (``KINDS``):

- ``image-classification``: a folder ``PATH/<label>/<image>``; a record's bytes are the
  image file's bytes.
- ``text-classification``: a JSONL file of ``{"text": ..., "label": ...}`` objects; a
  record's bytes are the UTF-8 of ``text`` alone, so the same text under two labels is the
  same record (an exact duplicate: a validator keeps the first).

A record is known by the sha256 of its bytes everywhere (upload, validation, pay). Reading
refuses anything it cannot account for, with the file (or ``FILE line N``) in one line, so
a contributor fixes the dataset before uploading instead of being refused by validators.
Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "KINDS",
    "LABEL_PATTERN",
    "MAX_IMAGE_PIXELS",
    "MAX_TEXT_CHARS",
    "Dataset",
    "DatasetError",
    "Record",
    "decode_image",
    "detect_kind",
    "integrity_problem",
    "label_problem",
    "read_dataset",
    "sha256_hex",
]

IMAGE_KIND = "image-classification"
TEXT_KIND = "text-classification"
KINDS = (IMAGE_KIND, TEXT_KIND)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"})
# The decoders Pillow may use on contributed bytes: the formats of IMAGE_SUFFIXES only, so a
# hostile upload cannot reach Pillow's rarer (less exercised) decoders by its magic bytes.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
# Below Pillow's own decompression-bomb warning (~89 Mpx), checked from the header before
# any pixel is decoded: a 50 Mpx RGBA image is already 200 MB decoded.
MAX_IMAGE_PIXELS = 50_000_000
MAX_TEXT_CHARS = 2000
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LABEL_RULE = "1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"


class DatasetError(Exception):
    """A dataset cannot be read; ``str(err)`` is one line naming the file (or line)."""


@dataclass(frozen=True)
class Record:
    """One labelled example: ``hash`` is the sha256 hex of its bytes, ``size`` their length,
    ``name`` where it came from (``cat/001.png`` or ``data.jsonl:12``)."""

    hash: str
    label: str
    size: int
    name: str


@dataclass(frozen=True)
class Dataset:
    """A dataset read and checked by :func:`read_dataset`.

    ``records`` are sorted by name. A record's bytes come from :meth:`payload`: images are
    read again from ``root`` when asked (a folder of images can be far bigger than memory
    should hold; the hash is checked again, so a file changed since reading is refused),
    texts are kept in ``texts`` (hash -> UTF-8 bytes; bounded by ``max_bytes``).
    """

    kind: str
    root: Path
    records: tuple[Record, ...]
    texts: Mapping[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def total_bytes(self) -> int:
        """The sum of the records' sizes."""
        return sum(record.size for record in self.records)

    def payload(self, record: Record) -> bytes:
        """The bytes of ``record`` (whose sha256 is ``record.hash``)."""
        if self.kind == TEXT_KIND:
            return self.texts[record.hash]
        path = self.root / record.name
        try:
            data = path.read_bytes()
        except OSError as err:
            raise DatasetError(f"{path}: cannot read ({_reason(err)})") from err
        if sha256_hex(data) != record.hash:
            raise DatasetError(f"{path}: changed since the dataset was read")
        return data

    def items(self) -> Iterator[tuple[str, str, bytes]]:
        """``(hash, label, bytes)`` per record, in order: the input of ``validate_records``."""
        for record in self.records:
            yield record.hash, record.label, self.payload(record)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def label_problem(label: str) -> str | None:
    """Why ``label`` is not allowed (it becomes a folder name and a key), or None."""
    if LABEL_PATTERN.fullmatch(label) is None:
        return f"label {label[:80]!r} not allowed ({_LABEL_RULE})"
    return None


def detect_kind(path: Path) -> str:
    """The kind a path holds: a folder of images, or a ``.jsonl`` file of texts."""
    if path.is_dir():
        return IMAGE_KIND
    if path.is_file() and path.suffix.lower() == ".jsonl":
        return TEXT_KIND
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    raise DatasetError(
        f"{path}: not a dataset (a folder PATH/<label>/<image> or a .jsonl file of texts)"
    )


def read_dataset(
    path: Path, kind: str | None = None, *, max_bytes: int, max_records: int
) -> Dataset:
    """Read and check the dataset at ``path`` (every image is decoded once).

    Raises :class:`DatasetError` on the first problem, and when the records' total size is
    over ``max_bytes`` or their number over ``max_records`` (checked as it reads, so a huge
    folder is refused early).
    """
    if max_bytes < 1 or max_records < 1:
        raise ValueError(f"limits must be positive, got {max_bytes=} {max_records=}")
    detected = detect_kind(path)
    if kind is None:
        kind = detected
    elif kind not in KINDS:
        raise DatasetError(f"unknown dataset kind {kind!r} (one of {', '.join(KINDS)})")
    elif kind != detected:
        raise DatasetError(f"{path}: holds {detected}, not {kind}")
    limits = _Limits(path, max_bytes, max_records)
    if kind == IMAGE_KIND:
        records = _read_images(path, limits)
        texts: dict[str, bytes] = {}
    else:
        records, texts = _read_texts(path, limits)
    if not records:
        raise DatasetError(f"{path}: no records")
    return Dataset(
        kind=kind,
        root=path,
        records=tuple(sorted(records, key=lambda r: r.name)),
        texts=texts,
    )


def integrity_problem(kind: str, data: bytes) -> str | None:
    """Why ``data`` is not a sound record of ``kind``, or None.

    What a validator checks on bytes from the network, where a hostile contributor may have
    skipped :func:`read_dataset`: an image must decode fully (not just its header) and be
    at most ``MAX_IMAGE_PIXELS``; a text must be UTF-8, not blank, at most
    ``MAX_TEXT_CHARS`` characters.
    """
    if kind == IMAGE_KIND:
        image = decode_image(data)
        if isinstance(image, str):
            return image
        image.close()
        return None
    if kind == TEXT_KIND:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            return f"not UTF-8 (byte {err.start})"
        return _text_problem(text)
    raise ValueError(f"unknown dataset kind {kind!r}")


def decode_image(data: bytes) -> Image.Image | str:
    """The fully decoded image in ``data``, or why it is not a sound image.

    ``verify()`` checks the structure (and PNG checksums) but does not decode the pixels,
    so a truncated file passes it: a real ``load()`` on a fresh open follows (``verify``
    leaves the image unusable).
    """
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as probe:
            width, height = probe.size
            if width * height > MAX_IMAGE_PIXELS:
                return f"{width}x{height} is over {MAX_IMAGE_PIXELS // 1_000_000} megapixels"
            probe.verify()
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        image.load()
    # Pillow's decoders raise many types on hostile bytes (OSError, SyntaxError, struct
    # errors, ValueError, DecompressionBombError, ...): any failure means "not an image".
    except Exception as err:
        return f"not a readable image ({_reason(err)})"
    if image.width < 1 or image.height < 1:
        return "empty image"
    return image


class _Limits:
    """Counts records and bytes as they are read; raises once a limit is passed."""

    def __init__(self, path: Path, max_bytes: int, max_records: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.records = 0
        self.bytes = 0

    def add(self, size: int) -> None:
        self.records += 1
        self.bytes += size
        if self.records > self.max_records:
            raise DatasetError(f"{self.path}: more than {self.max_records} records (the limit)")
        if self.bytes > self.max_bytes:
            raise DatasetError(f"{self.path}: more than {self.max_bytes} bytes (the limit)")


def _read_images(root: Path, limits: _Limits) -> list[Record]:
    try:
        inside = root.resolve(strict=True)
    except (OSError, RuntimeError) as err:
        raise DatasetError(f"{root}: cannot read ({_reason(err)})") from err
    layout = f"expected {root}/<label>/<image>"
    records: list[Record] = []
    for folder in _entries(root, inside):
        if folder.is_file():
            raise DatasetError(f"{folder}: a file directly in {root} ({layout})")
        if not folder.is_dir():
            raise DatasetError(f"{folder}: not a regular file or folder")
        problem = label_problem(folder.name)
        if problem is not None:
            raise DatasetError(f"{folder}: {problem}")
        for entry in _entries(folder, inside):
            if entry.is_dir():
                raise DatasetError(f"{entry}: a nested folder ({layout})")
            if not entry.is_file():
                raise DatasetError(f"{entry}: not a regular file")
            if entry.suffix.lower() not in IMAGE_SUFFIXES:
                suffixes = " ".join(sorted(IMAGE_SUFFIXES))
                raise DatasetError(f"{entry}: not an image file (by its extension: {suffixes})")
            try:
                # The limit is checked on the size first: a huge file is never read.
                limits.add(entry.stat().st_size)
                data = entry.read_bytes()
            except OSError as err:
                raise DatasetError(f"{entry}: cannot read ({_reason(err)})") from err
            problem = integrity_problem(IMAGE_KIND, data)
            if problem is not None:
                raise DatasetError(f"{entry}: {problem}")
            name = f"{folder.name}/{entry.name}"
            records.append(Record(sha256_hex(data), folder.name, len(data), name))
    return records


def _entries(folder: Path, inside: Path) -> list[Path]:
    """The entries of ``folder`` by name, without hidden ones (``.DS_Store``, ``._x.png``:
    operating-system litter, not data), refusing symlinks that lead outside ``inside``."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as err:
        raise DatasetError(f"{folder}: cannot list ({_reason(err)})") from err
    kept: list[Path] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            try:
                target = entry.resolve(strict=True)
            except (OSError, RuntimeError) as err:  # dangling, or a loop
                raise DatasetError(f"{entry}: broken symlink ({_reason(err)})") from err
            if not target.is_relative_to(inside):
                raise DatasetError(f"{entry}: symlink escapes {inside}")
        kept.append(entry)
    return kept


def _read_texts(path: Path, limits: _Limits) -> tuple[list[Record], dict[str, bytes]]:
    records: list[Record] = []
    texts: dict[str, bytes] = {}
    try:
        with path.open("rb") as lines:
            for number, raw in enumerate(lines, start=1):
                where = f"{path} line {number}"
                # A BOM some editors write before the first line is not part of the text.
                chunk = raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw
                try:
                    line = chunk.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DatasetError(f"{where}: not UTF-8 (byte {err.start})") from err
                if not line.strip():
                    continue
                text, label = _parse_line(line, where)
                data = text.encode("utf-8")
                limits.add(len(data))
                digest = sha256_hex(data)
                texts[digest] = data
                records.append(Record(digest, label, len(data), f"{path.name}:{number}"))
    except OSError as err:
        raise DatasetError(f"{path}: cannot read ({_reason(err)})") from err
    return records, texts


def _parse_line(line: str, where: str) -> tuple[str, str]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise DatasetError(f"{where}: not JSON ({err.msg} at column {err.colno})") from err
    if not isinstance(obj, dict):
        raise DatasetError(f'{where}: not a JSON object ({{"text": ..., "label": ...}})')
    values: dict[str, str] = {}
    for key in ("text", "label"):
        if key not in obj:
            raise DatasetError(f"{where}: no {key!r} field")
        if not isinstance(obj[key], str):
            raise DatasetError(f"{where}: {key!r} is not a string")
        values[key] = obj[key]
    problem = _text_problem(values["text"]) or label_problem(values["label"])
    if problem is not None:
        raise DatasetError(f"{where}: {problem}")
    return values["text"], values["label"]


def _text_problem(text: str) -> str | None:
    if not text.strip():
        return "empty text"
    if len(text) > MAX_TEXT_CHARS:
        return f"text of {len(text)} characters (at most {MAX_TEXT_CHARS})"
    return None


def _reason(err: BaseException) -> str:
    # One line, whatever the library put in the message.
    text = " ".join(str(err).split())
    return text[:200] or type(err).__name__
