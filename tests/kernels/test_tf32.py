"""TF32 on NumPy, emulated: work units are exact in it, the benchmark's fp32 check is not."""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

from kernels.backend import Backend, numpy_backend
from kernels.freivalds import commit, verify
from kernels.gemm import make_operands
from kernels.work_spec import WorkSpec
from kernels.work_unit import compute_unit, exact_gemm
from tests.helpers.fake_devices import tf32_round


class _Tf32Numpy(types.ModuleType):
    """NumPy whose float32 matmul rounds its inputs to TF32 first, as tensor cores do."""

    def __init__(self) -> None:
        super().__init__("tf32_numpy")
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    def matmul(self, a: Any, b: Any) -> Any:
        self.calls += 1
        if a.dtype == np.float32:
            a, b = tf32_round(a), tf32_round(b)
        return np.matmul(a, b)


def _tf32_backend() -> tuple[Backend, _Tf32Numpy]:
    xp = _Tf32Numpy()
    base = numpy_backend()
    return Backend(name="numpy", xp=xp, device="TF32 emulation", llc_bytes=base.llc_bytes), xp


def test_tf32_rounding_emulation() -> None:
    assert np.array_equal(tf32_round(np.array([-2, -1, 1, 2], np.float32)), [-2, -1, 1, 2])
    assert tf32_round(np.array([1 + 2**-12], np.float32))[0] == 1.0  # below half an ulp
    assert tf32_round(np.array([1 + 2**-11], np.float32))[0] == 1 + 2**-10  # a tie: away
    x = np.random.default_rng(1).uniform(-1, 1, 1000).astype(np.float32)
    rounded = tf32_round(x)
    assert not np.array_equal(rounded, x)
    # 10 mantissa bits kept: relative error at most 2**-11.
    assert np.all(np.abs(rounded - x) <= np.abs(x) * 2.0**-11)
    assert np.all(rounded.view(np.uint32) & 0x1FFF == 0)


def test_work_unit_operands_are_exact_in_tf32() -> None:
    rng = np.random.default_rng(7)
    a = rng.choice(np.array([-2, -1, 1, 2], np.float32), size=(64, 512))
    bt = rng.choice(np.array([-2, -1, 1, 2], np.float32), size=(48, 512))
    xp = _Tf32Numpy()
    got = exact_gemm(xp, a, bt, "float32")
    assert xp.calls == 1
    expected = a.astype(np.int64) @ bt.T.astype(np.int64)
    assert np.array_equal(got, expected)


def test_a_work_unit_commits_to_the_same_root_in_tf32() -> None:
    spec = WorkSpec(bytes(range(32)), 256, 512, 128, 8)
    backend, xp = _tf32_backend()
    emulated = compute_unit(backend, spec)
    assert xp.calls > 0  # the unit's GEMMs went through the TF32 matmul
    assert emulated.root == compute_unit(numpy_backend(), spec).root


@pytest.mark.parametrize("n", [128, 512])
def test_tf32_would_fail_the_benchmarks_fp32_freivalds_check(n: int) -> None:
    # Why the CuPy backend pins fp32 GEMMs to fp32: the suite's product is checked at fp32
    # tolerance, which TF32's input rounding exceeds (11x at n = 128, 4x at n = 512).
    a, b = make_operands(numpy_backend(), n, "float32", seed=3)
    honest = np.matmul(a, b)
    tf32 = _Tf32Numpy().matmul(a, b)
    rng = np.random.default_rng(0)
    assert verify(a, b, honest, commit(honest), rng=rng).ok
    result = verify(a, b, tf32, commit(tf32), rng=rng)
    assert not result.ok
    assert result.max_abs_error > 2 * result.tolerance
