"""Real CUDA devices for ``pytest -m gpu``: every usable one, or a skip saying why not."""

from __future__ import annotations

import pytest

from kernels.backend import Backend, choose_backends
from kernels.cuda_probe import CudaProbe, probe_cuda


@pytest.fixture(scope="session")
def probe() -> CudaProbe:
    result = probe_cuda()
    if not result.devices:
        pytest.skip(f"no CUDA device: {result.reason.removeprefix('no CUDA device: ')}")
    return result


@pytest.fixture(scope="session")
def gpu_backends(probe: CudaProbe) -> list[Backend]:
    """One CuPy backend per usable device (the node's per-GPU workers get the same)."""
    if not probe.ok:
        pytest.fail(f"CUDA devices are visible but CuPy cannot use them: {probe.reason}")
    return list(choose_backends(None, {"OMNITENSOR_BACKEND": "cupy"}).backends)
