"""Shared fixtures: keep the developer's machine (config, data dirs, env) out of tests."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    for key in list(os.environ):
        if key.startswith("OMNITENSOR_"):
            monkeypatch.delenv(key)
    # No GPU here: tests run the kernels on NumPy unless a test says otherwise.
    monkeypatch.setenv("OMNITENSOR_BACKEND", "numpy")
    yield


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    # Unix socket paths are limited to ~107 bytes; pytest's tmp paths can be long.
    path = tmp_path / "d"
    return path


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """A test that configures the project's logging (handlers, level, propagation) as the
    commands do must not change what later tests' ``caplog`` sees."""
    logger = logging.getLogger("omnitensor")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
