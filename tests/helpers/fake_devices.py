"""A fake CuPy with N fake CUDA devices, on NumPy, that fails where real CuPy would.

Use it through pytest's monkeypatch (the probe's per-process cache is cleared both ways)::

    fake = install_fake_cupy(monkeypatch, gpus=4)       # sys.modules["cupy"] = fake
    backends = backends_for(None, {"OMNITENSOR_BACKEND": "auto"})   # 4 CuPy backends
    fake.gpus[2].gemms                                  # GEMMs that ran on device 2
    install_fake_cupy(monkeypatch, gpus=2, nvml=FakeNvml.with_gpus(2))  # same names, UUIDs
    fake.gpus[1].gemm_error = ImportError('Failure finding "libcublasLt.so.12"')
    install_fake_cupy(monkeypatch, count_error=cuda_error(100))  # getDeviceCount raises

What it models, each a defect that a do-nothing fake would let through:

* The current device is per thread (cudaSetDevice) and arrays remember their device: a
  GEMM or kernel on another device's arrays raises, as CuPy does.
* Streams run work on a simulated device clock: a GEMM advances its stream by
  ``2 m n k / gpu.flops`` seconds, an elementwise kernel by ``bytes / gpu.bandwidth``. An
  event takes its stream's clock when recorded, and ``get_elapsed_time`` raises
  cudaErrorNotReady unless both events completed (``Event.synchronize``, or their stream or
  device synchronized). So timing without synchronizing fails, and wall-clock timing
  gives other numbers than the device's.
* Events belong to the device current when made; recording one on another device's stream
  raises (cudaErrorInvalidResourceHandle).
* float32 GEMMs round their inputs to TF32 (ties away, as ``cvt.rna.tf32.f32``) when CuPy's
  compute type says so: ``CUPY_TF32`` read at the first float32 GEMM, as CuPy 14 does,
  unless ``cupy._core.set_compute_type`` pinned it first; ``gpu.tf32_forced`` always.
"""

from __future__ import annotations

import sys
import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

import pytest

from tests.helpers.fake_cuda import (
    CUDARuntimeError,
    FakeArray,
    FakeCupy,
    FakeGpu,
    cuda_error,
    reset_thread_state,
    tf32_round,
)

__all__ = [
    "CUDARuntimeError",
    "FakeArray",
    "FakeCupy",
    "FakeGpu",
    "cuda_error",
    "fake_gpus",
    "install_fake_cupy",
    "tf32_round",
]


def fake_gpus(n: int, nvml: Any = None, **kwargs: Any) -> list[FakeGpu]:
    """``n`` fake devices; with a ``FakeNvml``, the same names and UUIDs as its GPUs."""
    gpus = []
    for i in range(n):
        name = nvml.gpus[i].name if nvml is not None else f"Fake GPU {9000 + i}"
        uid = uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"fake-nvml/{i}/{name}").bytes
        gpus.append(FakeGpu(name=name, uuid=uid, **kwargs))
    return gpus


def install_fake_cupy(
    monkeypatch: pytest.MonkeyPatch,
    gpus: int | Sequence[FakeGpu] = 1,
    *,
    nvml: Any = None,
    **kwargs: Any,
) -> FakeCupy:
    """Install a fake CuPy as ``cupy`` for one test, and let the backend probe see it."""
    devices = fake_gpus(gpus, nvml) if isinstance(gpus, int) else list(gpus)
    fake = FakeCupy(devices, **kwargs)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setenv("OMNITENSOR_BACKEND", "auto")
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # the probe would set it
    reset_thread_state()
    # The probe, backends and hashers seen by this test are the fake's: monkeypatch puts
    # the real ones (and sys.modules["cupy"]) back afterwards.
    monkeypatch.setattr("kernels.cuda_probe._cached", None)
    monkeypatch.setattr("kernels.cuda_probe._backends", {})
    monkeypatch.setattr("kernels.sha256._CACHE", {})
    return fake
