"""``omnitensor infer`` / ``bench --inference`` / ``model info`` run as a user would, on the
tiny model: JSON lines in input order, streaming, and one clear line per bad input."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kernels.backend import numpy_backend
from kernels.inference import SentenceEncoder, load_model

ROOT = Path(__file__).resolve().parents[3]


def _env(model_dir: Path | str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITENSOR_")}
    env.update({"OMNITENSOR_BACKEND": "numpy", "OMNITENSOR_MODEL_DIR": str(model_dir)})
    return env


def run(
    model_dir: Path | str, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        cwd=ROOT,
        env=_env(model_dir),
        input=stdin.decode() if stdin is not None else None,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def expect_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("omnitensor: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_json_lines_in_input_order_skipping_empty_lines(tiny_dir: Path, tmp_path: Path) -> None:
    texts = ["a man is playing guitar", "dog", "the cat eats an apple", "music 😀 café"]
    source = tmp_path / "in.txt"
    source.write_text(f"{texts[0]}\n\n{texts[1]}\r\n   \n{texts[2]}\n{texts[3]}", "utf-8")
    result = run(tiny_dir, "infer", "--file", str(source), "--json", "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == texts
    assert "skipped 2 empty line(s)" in result.stderr
    with SentenceEncoder(load_model(tiny_dir, numpy_backend()), workers=1) as encoder:
        expected = encoder.encode(texts)
    np.testing.assert_allclose(np.array([row["embedding"] for row in rows]), expected, atol=1e-6)


def test_stdin_and_arguments(tiny_dir: Path) -> None:
    piped = run(tiny_dir, "infer", "--file", "-", "--json", stdin=b"dog\ncat\n")
    assert [json.loads(line)["text"] for line in piped.stdout.splitlines()] == ["dog", "cat"]
    plain = run(tiny_dir, "infer", "dog", "cat")
    assert plain.returncode == 0, plain.stderr
    assert [line.split("  ")[-1] for line in plain.stdout.splitlines()] == ["dog", "cat"]
    assert "(32 dims)" in plain.stdout


def test_output_streams_before_the_input_ends(tiny_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "infer", "--file", "-", "--json"],
        cwd=ROOT,
        env=_env(tiny_dir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"a man is playing guitar\n" * 1100)  # more than one chunk
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no output while stdin is still open"
        first = json.loads(proc.stdout.readline())
        assert first["text"] == "a man is playing guitar"
    finally:
        proc.stdin.close()
        proc.stdout.read()
        proc.wait(timeout=60)
        assert proc.stderr is not None
        proc.stderr.close()
        proc.stdout.close()
    assert proc.returncode == 0


def test_similarity(tiny_dir: Path) -> None:
    same = run(tiny_dir, "infer", "--similarity", "a dog runs", "a dog runs")
    assert same.stdout.strip() == "1.0000"
    result = run(tiny_dir, "infer", "--similarity", "a dog runs", "def f(x)", "--json")
    data = json.loads(result.stdout)
    with SentenceEncoder(load_model(tiny_dir, numpy_backend()), workers=1) as encoder:
        a, b = encoder.encode(["a dog runs", "def f(x)"])
    assert data["similarity"] == pytest.approx(float(a @ b), abs=1e-6)


def test_long_line_is_truncated_with_a_note(tiny_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "long.txt"
    source.write_text("music " * 500 + "\nshort\n")
    result = run(tiny_dir, "infer", "--file", str(source), "--json")
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 2
    assert "1 input(s) longer than 24 tokens were truncated" in result.stderr


def test_file_that_is_not_utf8_names_the_line(tiny_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "latin1.txt"
    source.write_bytes("fine\nalso fine\ncaf\u00e9\n".encode("latin-1"))
    expect_error(run(tiny_dir, "infer", "--file", str(source)), "latin1.txt:3: not valid UTF-8")


def test_empty_and_missing_files(tiny_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    expect_error(run(tiny_dir, "infer", "--file", str(empty)), "empty.txt: no text to embed")
    expect_error(run(tiny_dir, "infer", "--file", str(tmp_path / "nope.txt")), "cannot read")


def test_missing_or_corrupt_model(tiny_dir: Path, tmp_path: Path) -> None:
    expect_error(run(tmp_path / "absent", "infer", "dog"), "absent", "does not exist")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (broken / name).write_bytes((tiny_dir / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    expect_error(run(broken, "infer", "dog"), "model.safetensors is corrupt")
    expect_error(run(broken, "infer", "--dtype", "float16", "dog"), "float16 needs a CUDA GPU")


def test_bench_inference_and_model_info(tiny_dir: Path) -> None:
    bench = run(tiny_dir, "bench", "--inference", "--quick", "--json")
    assert bench.returncode == 0, bench.stderr
    figures = json.loads(bench.stdout)
    assert figures["sentences"] == 200
    assert figures["tokens"] > figures["sentences"]
    assert figures["sentences_per_s"] > 0
    assert figures["kernels"].startswith("numba ")  # the fused CPU kernels were used
    info = run(tiny_dir, "model", "info")
    assert info.stdout.split() == ["all-MiniLM-L6-v2", str(tiny_dir)]


def test_text_argument_that_is_not_utf8(tiny_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tui", "infer", "dog", b"caf\xe9"],
        cwd=ROOT,
        env=_env(tiny_dir),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    expect_error(result, "TEXT argument 2 is not valid UTF-8")
