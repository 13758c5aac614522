"""The inference-job commands' refusals, as a user meets them (one line, non-zero exit)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.cli import run_cli


def test_coordinator_refuses_a_bad_private_quality_bank(tmp_path: Path) -> None:
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps({"format": 1, "questions": []}))
    for path, why in ((bank, "'questions' must be a non-empty list"), (tmp_path / "no.json", "")):
        done = run_cli(
            "coordinator",
            "--broker",
            "mqtt://127.0.0.1:1",
            "--data-dir",
            str(tmp_path / "coord"),
            "--quality-bank",
            str(path),
        )
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("omnitensor: error: quality bank:")
        assert why in lines[0] and "Traceback" not in done.stderr


def test_infer_network_refuses_non_utf8_naming_the_line(tmp_path: Path) -> None:
    text = tmp_path / "in.txt"
    text.write_bytes(b"fine\n\xff\xfe broken\n")
    done = run_cli("infer", "--network", "--file", str(text), "--data-dir", str(tmp_path / "d"))
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"omnitensor: error: {text}:2: not valid UTF-8 (byte 1 of the line)"
    ]
