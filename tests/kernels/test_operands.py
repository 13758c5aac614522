"""Operand generation: any rows equal the same rows of the whole matrix; values and keys."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.operands import host_rows, operand_key, operand_rows

SEED = bytes(range(32))


def test_slices_equal_full_generation_on_both_paths() -> None:
    key = operand_key(SEED, "A")
    full = operand_rows(np, key, np.arange(300), 192)
    picked = np.array([0, 7, 8, 150, 299])
    assert np.array_equal(host_rows(key, picked, 192), full[picked])
    assert np.array_equal(operand_rows(np, key, picked, 192), full[picked])
    assert np.array_equal(host_rows(key, np.arange(300), 192), full)


def test_values_are_the_four_small_integers_in_equal_shares() -> None:
    values = host_rows(operand_key(SEED, "Bt"), np.arange(64), 1024)
    kinds, counts = np.unique(values, return_counts=True)
    assert kinds.tolist() == [-2.0, -1.0, 1.0, 2.0]
    # 65536 draws: each share is 1/4 +- 0.0017 (1 sigma); 0.01 is ~6 sigma.
    assert np.all(np.abs(counts / values.size - 0.25) < 0.01)


def test_keys_differ_by_seed_and_operand() -> None:
    keys = {operand_key(SEED, "A"), operand_key(SEED, "Bt"), operand_key(bytes(32), "A")}
    assert len(keys) == 3
    a = host_rows(operand_key(SEED, "A"), np.arange(4), 64)
    b = host_rows(operand_key(SEED, "Bt"), np.arange(4), 64)
    assert not np.array_equal(a, b)


def test_dtype_and_bad_arguments() -> None:
    key = operand_key(SEED, "A")
    half = operand_rows(np, key, np.arange(3), 128, np.float16)
    assert half.dtype == np.float16
    assert np.array_equal(half.astype(np.float32), host_rows(key, np.arange(3), 128))
    with pytest.raises(ValueError, match="multiple of 64"):
        host_rows(key, np.arange(2), 100)
    with pytest.raises(ValueError, match="operand"):
        operand_key(SEED, "B")
