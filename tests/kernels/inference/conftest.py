"""Fixtures: the tiny random-weight model, written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernels.inference.tiny import build_tiny_model


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bert"))
