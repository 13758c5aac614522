"""Backends on several (fake) devices: work stays on its device, timing is the device's."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from kernels.backend import Backend, backends_for, numpy_backend
from kernels.bandwidth import benchmark_bandwidth
from kernels.gemm import benchmark_gemm, gemm
from kernels.suite import run_suite
from kernels.work_proof import challenge_indices, encode_proof, verify
from kernels.work_spec import WorkSpec
from kernels.work_unit import WARM_UP_SPEC, answer, compute_unit, warm_up
from tests.helpers.fake_devices import FakeCupy, fake_gpus, install_fake_cupy

SPEC = WorkSpec(bytes(range(32)), 512, 256, 128, 8)


def _gemms(fake: FakeCupy) -> list[int]:
    return [gpu.gemms for gpu in fake.gpus]


def test_each_backend_computes_on_its_own_device(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install_fake_cupy(monkeypatch, gpus=3)
    backends = backends_for(None)
    before = _gemms(fake)
    benchmark_gemm(backends[2], 64, "float32", trials=2)
    assert [a - b for a, b in zip(_gemms(fake), before, strict=True)] == [0, 0, 3]
    # Arrays of one device used from another device's context are refused, as by CuPy.
    a = backends[0].asarray(np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"resides \(0\) is different from the current device"):
        gemm(backends[1], a, a)


def test_device_time_comes_from_events(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = fake_gpus(2, flops=20e12, bandwidth=500e9, l2_bytes=64 * 1024)
    gpus[1] = dataclasses.replace(gpus[1], flops=80e12)
    install_fake_cupy(monkeypatch, gpus)
    slow, fast = backends_for(None)
    # The fake's device clock gives the device's rate exactly; a wall clock would not.
    assert benchmark_gemm(slow, 128, "float32", trials=3).tflops == pytest.approx(20.0)
    assert benchmark_gemm(fast, 128, "float32", trials=3).tflops == pytest.approx(80.0)
    assert benchmark_bandwidth(slow, trials=2).gbps == pytest.approx(500.0)


def test_quick_suite_on_a_gpu_with_cupy_tf32_set(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_cupy(monkeypatch, fake_gpus(1, l2_bytes=256 * 1024))
    monkeypatch.setenv("CUPY_TF32", "1")  # the user's environment; the backend pins fp32
    (backend,) = backends_for(None)
    result = run_suite(backend, quick=True, seed=5)
    assert result["backend"] == "cupy"
    assert result["device_index"] == 0
    assert result["uuid"] == backend.uuid
    assert result["verified"] is True
    assert result["gemm"]["fp32"]["tflops"] == pytest.approx(50.0)  # type: ignore[index]


def test_work_units_on_several_devices_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install_fake_cupy(monkeypatch, gpus=3)
    backends = backends_for(None)
    expected = compute_unit(numpy_backend(), SPEC).root
    roots: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def work(backend: Backend) -> None:
        try:
            unit = compute_unit(backend, SPEC)
            assert unit.hasher == "cuda"
            secret = b"s" * 32
            indices = challenge_indices(secret, SPEC, unit.root, 8)
            proof = encode_proof(answer(unit, indices))
            assert verify(SPEC, unit.root, indices, proof).ok
            assert backend.index is not None
            roots[backend.index] = unit.root
        except BaseException as exc:  # reported on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b,)) for b in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert roots == {0: expected, 1: expected, 2: expected}
    # Every device did its own GEMMs (the probe's, a warm-up unit's and the unit's).
    assert all(n > 2 for n in _gemms(fake))


def test_compute_unit_warms_up_once_per_thread_and_device(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install_fake_cupy(monkeypatch, gpus=2)
    monkeypatch.setattr("kernels.work_unit._WARM", set())
    backend = backends_for([1])[0]
    before = fake.gpus[1].gemms
    compute_unit(backend, WARM_UP_SPEC)
    first = fake.gpus[1].gemms - before
    compute_unit(backend, WARM_UP_SPEC)
    second = fake.gpus[1].gemms - before - first
    assert first == 2 * second  # the warm-up unit, then the unit; later only the unit
    warm_up(backend)  # already warm in this thread: nothing runs
    assert fake.gpus[1].gemms - before == first + second
    assert fake.gpus[0].gemms == 2  # device 0 ran only its probe


def test_each_device_checks_its_own_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two identical cards; the CUDA SHA-256 kernel fails on the second only.
    gpus = fake_gpus(2)
    gpus[1] = dataclasses.replace(gpus[1], name=gpus[0].name, raw_error=RuntimeError("bad"))
    install_fake_cupy(monkeypatch, gpus)
    first, second = backends_for(None)
    assert first.device == second.device
    assert compute_unit(first, SPEC).hasher == "cuda"
    unit = compute_unit(second, SPEC)
    assert unit.hasher == "vector"  # its own self-check failed: the fallback
    assert unit.root == compute_unit(numpy_backend(), SPEC).root
