"""A node told to use a backend it cannot run stops at start, in one line; auto falls back."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_config
from core.errors import KernelError
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from tests.helpers.fake_devices import cuda_error, install_fake_cupy


def _node(data_dir: Path, backend: str) -> Node:
    config = load_config({"data_dir": str(data_dir), "name": "alice"})
    return Node(config, nvml=FakeNvml.with_gpus(1), backend_env={"OMNITENSOR_BACKEND": backend})


async def test_forced_cupy_without_a_device_stops_the_node(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_cupy(monkeypatch, count_error=cuda_error(100))
    node = _node(data_dir, "cupy")
    with pytest.raises(KernelError) as err:
        await node.start()
    assert str(err.value) == (
        "OMNITENSOR_BACKEND=cupy but CuPy cannot be used: "
        "no CUDA device: cudaErrorNoDevice: fake CUDA error"
    )
    # It released what it held: the same data dir starts again (on NumPy).
    async with _node(data_dir, "numpy") as again:
        assert again.backend_name == "numpy"


async def test_forced_cupy_without_cublas_stops_the_node(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = install_fake_cupy(monkeypatch, gpus=2)
    for gpu in fake.gpus:
        gpu.gemm_error = ImportError('Failure finding "libcublasLt.so.13 or libcublasLt.so.12"')
    with pytest.raises(KernelError, match="CuPy found no cuBLAS: install the project's `cuda12`"):
        await _node(data_dir, "cupy").start()


async def test_auto_without_cublas_runs_on_numpy(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = install_fake_cupy(monkeypatch, gpus=1)
    fake.gpus[0].gemm_error = ImportError('Failure finding "libcublasLt.so.12"')
    async with _node(data_dir, "auto") as node:
        assert node.backend_name == "numpy"
        assert node.backend_error is None
