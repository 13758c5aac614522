"""``contribute-data`` refusing bad input as a user meets it: one line naming the file or
line, a non-zero exit, no traceback, and no node started (nothing in the data dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import run_cli


def test_bad_datasets_are_refused_in_one_line_naming_where(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "cat").mkdir(parents=True)
    (images / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"whatever")
    escaping = tmp_path / "escaping"
    (escaping / "dog").mkdir(parents=True)
    (escaping / "dog" / "link.png").symlink_to(outside)
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "fine", "label": "a"}\n{"text": "no label"}\n', encoding="utf-8")
    cases = [
        (images, "broken.png"),
        (escaping, "link.png"),
        (texts, f"{texts} line 2"),
    ]
    data_dir = tmp_path / "node"
    for path, where in cases:
        done = run_cli(
            "contribute-data", "--dataset", "x", "--path", str(path), "--data-dir", str(data_dir)
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("omnitensor: error: "), done.stderr
        assert where in lines[0]
    assert not data_dir.exists()
    done = run_cli("contribute-data", "--dataset", "x", "--data-dir", str(data_dir))
    assert done.returncode == 2
    assert "needs --dataset NAME and --path PATH" in done.stderr


def test_the_datasets_listing_names_states_labels_and_validators(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from core.api.data import DatasetInfo, DatasetList, ValidatorSeat
    from tui.cli.data import print_listing

    dataset = DatasetInfo(
        name="pets",
        kind="image-classification",
        contributor="a" * 64,
        contributor_name="alice",
        licence="CC0",
        records=9,
        bytes=9000,
        labels={"cat": 4, "dog": 5},
        state="validated",
        registered_ts=0.0,
        validated_ts=1.0,
        accepted=7,
        paid_records=7,
        validators=(
            ValidatorSeat(node_id="b" * 64, state="agreed"),
            ValidatorSeat(node_id="c" * 64, state="disagreed"),
        ),
    )
    print_listing(DatasetList(datasets=(dataset,), tasks=(), earned=4_500_000, upload=None, ts=0))
    out = capsys.readouterr().out
    assert "pets" in out and "image" in out and "validated" in out and "alice" in out
    assert "cat:4 dog:5" in out and "bbbbbbbb agreed" in out and "cccccccc disagreed" in out
    assert "earned from data: 0.0045 OMNIT" in out
    print_listing(DatasetList(datasets=(), tasks=(), earned=0, upload=None, ts=0))
    assert "no datasets yet" in capsys.readouterr().out
