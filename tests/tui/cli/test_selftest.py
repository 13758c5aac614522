"""``omnitensor selftest``: no GPU is one line and exit 0; fake rigs give the full report."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid

import pytest

from core.node.fake_nvml import FakeNvml
from kernels.backend import Backend, numpy_backend
from kernels.cuda_probe import probe_cuda
from tests.helpers.cli import run_cli
from tests.helpers.fake_devices import cuda_error, fake_gpus, install_fake_cupy
from tui.cli.selftest import selftest

NO_CUBLAS = ImportError('Failure finding "libcublasLt.so.12"')


def _run(**kwargs: object) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = selftest(out=out, quick=True, **kwargs)  # type: ignore[arg-type]
    return code, out.getvalue().splitlines()


def _tags(lines: list[str], name: str) -> list[str]:
    return [line.split()[0] for line in lines if line[7:].startswith(f"{name} ")]


def test_no_gpu_here_is_one_line_and_exit_zero() -> None:
    probe = probe_cuda()
    if probe.devices:
        pytest.skip("this machine has a CUDA device")
    result = run_cli("selftest", "--gpu")
    assert result.returncode == 0, result.stderr
    reason = probe.reason.removeprefix("no CUDA device: ")
    assert result.stdout == f"no CUDA device: {reason}; nothing to test\n"
    assert result.stderr == ""


def test_bad_gpus_is_one_line_exit_two() -> None:
    result = run_cli("selftest", "--gpu", "--gpus", "0,0")
    assert result.returncode == 2
    assert result.stderr == (
        "omnitensor: error: command line: gpus: '0,0' must name each GPU once, at least one\n"
    )


def test_a_healthy_two_gpu_rig(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml.with_gpus(2)
    install_fake_cupy(monkeypatch, fake_gpus(2, nvml, l2_bytes=256 * 1024))
    code, lines = _run(gpu=True, nvml=nvml)
    assert code == 0, "\n".join(lines)
    assert lines[0].startswith("CuPy ")
    assert "2 of 2 CUDA devices usable" in lines[0]
    for name in ("probe", "gemm", "bandwidth", "sha256", "work unit", "fp16"):
        assert _tags(lines, name) == ["[ok]", "[ok]"], name
    assert _tags(lines, "encoder") == ["[skip]", "[skip]"]
    assert _tags(lines, "together") == ["[ok]"]
    (nvml_line,) = [line for line in lines if "nvml" in line[:20]]
    assert nvml_line.startswith("[ok]")
    assert "every CUDA device matched by UUID" in nvml_line
    gemm = next(line for line in lines if "gemm" in line[:20])
    assert "= 1.00 x cuBLAS best" in gemm  # the fake's device clock: our GEMM is cuBLAS's
    assert "hasher cuda" in next(line for line in lines if "work unit" in line[:20])
    assert lines[-1] == "selftest: 14 ok, 0 failed, 2 skipped"


def test_a_gpu_without_cublas_fails_the_selftest(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml.with_gpus(2)
    fake = install_fake_cupy(monkeypatch, fake_gpus(2, nvml, l2_bytes=256 * 1024))
    fake.gpus[1].gemm_error = NO_CUBLAS
    code, lines = _run(gpu=True, nvml=nvml)
    assert code == 1
    assert _tags(lines, "probe") == ["[ok]", "[FAIL]"]
    assert "GPU 1" in lines[2]
    assert "CuPy found no cuBLAS: install the project's `cuda12`" in lines[2]
    assert _tags(lines, "gemm") == ["[ok]"]  # GPU 0 is still checked
    assert _tags(lines, "together") == []


def test_gpus_the_driver_shows_but_cupy_cannot_use(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_cupy(monkeypatch, count_error=cuda_error(35), driver_version=11040)
    code, lines = _run(gpu=True, nvml=FakeNvml.with_gpus(3))
    assert code == 1
    assert lines[0].startswith("[FAIL] probe      the driver shows 3 GPU(s); CuPy: ")
    assert "the NVIDIA driver is too old: it supports CUDA 11.4" in lines[0]


def test_no_driver_at_all_is_nothing_to_test(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_cupy(monkeypatch, count_error=cuda_error(35), driver_version=0)
    code, lines = _run(gpu=True, nvml=FakeNvml.missing_library())
    assert (code, len(lines)) == (0, 1)
    assert lines[0] == (
        "no CUDA device: no NVIDIA driver: the CUDA driver library (libcuda.so) was not found; "
        "nothing to test"
    )


def test_a_cuda_device_nvml_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = fake_gpus(1, l2_bytes=256 * 1024)
    gpus[0] = dataclasses.replace(gpus[0], uuid=uuid.uuid4().bytes)
    install_fake_cupy(monkeypatch, gpus)
    code, lines = _run(gpu=True, nvml=FakeNvml.with_gpus(1))
    assert code == 1
    assert _tags(lines, "nvml") == ["[FAIL]"]
    assert "CUDA devices not in NVML by UUID" in next(x for x in lines if "nvml" in x[:20])


def test_selected_gpus_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml.with_gpus(3)
    install_fake_cupy(monkeypatch, fake_gpus(3, nvml, l2_bytes=256 * 1024))
    out = io.StringIO()
    assert selftest(gpu=True, gpus="2", quick=True, as_json=True, nvml=nvml, out=out) == 0
    doc = json.loads(out.getvalue())
    assert doc["ok"] is True
    devices = {c["device"] for c in doc["checks"] if c["name"] in ("probe", "gemm")}
    assert devices == {2}
    gemm = next(c for c in doc["checks"] if c["name"] == "gemm")
    assert gemm["figures"]["fp32_tflops"] == pytest.approx(50.0)


def test_without_gpu_the_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    small: Backend = dataclasses.replace(numpy_backend(), llc_bytes=256 * 1024)
    monkeypatch.setattr("kernels.backend.numpy_backend", lambda: small)
    code, lines = _run(gpu=False)
    assert code == 0, "\n".join(lines)
    assert lines[0] == f"NumPy on {small.device}"
    assert [line.split()[1] for line in lines[1:-1]] == [
        "gemm",
        "bandwidth",
        "sha256",
        "work",
        "fp16",
        "encoder",
    ]
    assert lines[-1] == "selftest: 5 ok, 0 failed, 1 skipped"
