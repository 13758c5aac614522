"""The CuPy probe's reasons, forced backends, device selection, and devices kept apart."""

from __future__ import annotations

import builtins
import os
from typing import Any

import pytest

from core.node.fake_nvml import FakeNvml
from kernels.backend import BackendError, choose_backends, cupy_status, parse_gpus
from kernels.cuda_probe import describe_failure, normalize_pci_bus_id, nvml_uuid, probe_cuda
from tests.helpers.fake_devices import cuda_error, install_fake_cupy

AUTO = {"OMNITENSOR_BACKEND": "auto"}
FORCED = {"OMNITENSOR_BACKEND": "cupy"}
NO_CUBLAS = ImportError(
    'Failure finding "libcublasLt.so.13 or libcublasLt.so.12": No such file: libcublasLt.so.13'
)
CUBLAS_REASON = (
    "CuPy found no cuBLAS: install the project's `cuda12` extra, which now pulls the toolkit "
    "wheels, or a CUDA toolkit"
)


class DynamicLibNotFoundError(RuntimeError):
    """Named as cuda-pathfinder's, which CuPy 14 raises for a missing NVRTC."""


# --- Why CuPy is not used: each failure has its own reason ---


@pytest.mark.parametrize(
    ("error", "driver", "reason"),
    [
        (
            cuda_error(100),
            12040,
            "no CUDA device: cudaErrorNoDevice: fake CUDA error",
        ),
        (
            cuda_error(35),
            0,
            "no NVIDIA driver: the CUDA driver library (libcuda.so) was not found",
        ),
        (
            cuda_error(35),
            11040,
            "the NVIDIA driver is too old: it supports CUDA 11.4; "
            "CuPy's CUDA 12.x needs driver 525 or newer",
        ),
        (
            cuda_error(803),
            12040,
            "the NVIDIA driver's kernel module and library differ: reboot after a driver update",
        ),
        (
            OSError("libcuda.so.1: cannot open shared object file"),
            0,
            "CuPy could not load libcuda: install the project's `cuda12` extra, which now pulls "
            "the toolkit wheels, or a CUDA toolkit",
        ),
    ],
)
def test_device_count_failures_have_their_own_reason(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, driver: int, reason: str
) -> None:
    install_fake_cupy(monkeypatch, count_error=error, driver_version=driver)
    probe = probe_cuda()
    assert (probe.ok, probe.reason, probe.devices) == (False, reason, ())
    choice = choose_backends(None, AUTO)
    assert [b.name for b in choice.backends] == ["numpy"]
    assert choice.fallback
    assert choice.note == f"CuPy not used: {reason}"
    with pytest.raises(BackendError) as err:
        choose_backends(None, FORCED)
    assert str(err.value) == f"OMNITENSOR_BACKEND=cupy but CuPy cannot be used: {reason}"


def test_hidden_devices_name_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_cupy(monkeypatch, count_error=cuda_error(100))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert probe_cuda().reason.endswith("(CUDA_VISIBLE_DEVICES='')")
    install_fake_cupy(monkeypatch, gpus=0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    assert probe_cuda().reason == (
        "no CUDA device: the CUDA runtime reports 0 devices (CUDA_VISIBLE_DEVICES='7')"
    )


def test_cupy_that_fails_to_import(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def failing(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "cupy":
            raise OSError("libcudart.so.12: cannot open\n shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("kernels.cuda_probe._cached", None)
    monkeypatch.setattr(builtins, "__import__", failing)
    assert cupy_status() == (
        False,
        "cupy failed to import: libcudart.so.12: cannot open shared object file",
    )


@pytest.mark.parametrize(
    ("where", "error", "major", "reason"),
    [
        ("gemm", NO_CUBLAS, 12, CUBLAS_REASON),
        ("gemm", NO_CUBLAS, 13, CUBLAS_REASON.replace("cuda12", "cuda13")),
        (
            "compile",
            DynamicLibNotFoundError('Failure finding "libnvrtc.so.13 or libnvrtc.so.12"'),
            12,
            "CuPy found no NVRTC (it compiles CuPy's kernels): install the project's `cuda12` "
            "extra, which now pulls the toolkit wheels, or a CUDA toolkit",
        ),
        (
            "compile",
            cuda_error(222),
            12,
            "the NVIDIA driver is too old for the kernels CuPy compiles: update the driver",
        ),
        ("gemm", cuda_error(2), 12, "out of device memory (another process holds it?)"),
        ("gemm", RuntimeError("something\nelse"), 12, "CuPy failed on this device: something else"),
    ],
)
def test_a_device_that_counts_but_cannot_compute(
    monkeypatch: pytest.MonkeyPatch, where: str, error: BaseException, major: int, reason: str
) -> None:
    fake = install_fake_cupy(monkeypatch, gpus=2, runtime_version=major * 1000 + 20)
    for gpu in fake.gpus:
        setattr(gpu, f"{where}_error", error)
    probe = probe_cuda()
    assert not probe.ok
    assert probe.reason == reason
    assert [(d.index, d.usable, d.reason) for d in probe.devices] == [
        (0, False, reason),
        (1, False, reason),
    ]
    assert choose_backends(None, AUTO).backends[0].name == "numpy"
    with pytest.raises(BackendError, match="OMNITENSOR_BACKEND=cupy but CuPy cannot be used"):
        choose_backends(None, FORCED)


def test_wrong_arithmetic_is_not_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install_fake_cupy(monkeypatch, gpus=2)
    fake.gpus[1].tf32_forced = True
    probe = probe_cuda()
    assert probe.ok
    assert [d.usable for d in probe.devices] == [True, False]
    assert probe.devices[1].reason.startswith("fp32 GEMM runs in TF32")
    assert probe.summary().startswith("1 of 2 CUDA devices usable (1: fp32 GEMM runs in TF32")


def test_cupy_tf32_is_pinned_off_before_the_first_gemm(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install_fake_cupy(monkeypatch)
    monkeypatch.setenv("CUPY_TF32", "1")
    assert probe_cuda().ok
    assert fake.compute_types["float32"] == 1  # COMPUTE_TYPE_DEFAULT: no TF32


def test_the_probe_catches_tf32_when_the_pin_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_cupy(monkeypatch)
    monkeypatch.setenv("CUPY_TF32", "1")
    monkeypatch.setattr("kernels.cuda_probe.pin_fp32", lambda cupy: None)
    assert "fp32 GEMM runs in TF32" in probe_cuda().reason


def test_describe_failure_and_uuid_helpers() -> None:
    assert describe_failure(RuntimeError("cudaErrorNoDevice: none")) == (
        "no CUDA device: cudaErrorNoDevice: none"
    )
    assert describe_failure(cuda_error(46)).startswith("the GPU is unavailable")
    assert describe_failure(cuda_error(209)) == (
        "this CuPy build has no kernels for this GPU's architecture"
    )
    assert normalize_pci_bus_id("00000000:0A:00.0") == "0000:0a:00.0"
    assert normalize_pci_bus_id("0000:0a:00.0") == "0000:0a:00.0"
    assert normalize_pci_bus_id("bogus") == ""
    raw = bytes(range(16))
    assert nvml_uuid(raw) == "GPU-00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert nvml_uuid(b"short") == nvml_uuid(None) == ""  # cut at a zero byte: unknown


def test_the_probe_numbers_devices_as_nvidia_smi_does(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_cupy(monkeypatch)
    monkeypatch.delenv("CUDA_DEVICE_ORDER")
    probe_cuda()
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    install_fake_cupy(monkeypatch)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    probe_cuda()
    assert os.environ["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"  # the owner's choice stands


# --- Which devices: all usable ones, or those selected ---


def test_one_backend_per_usable_device(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml.with_gpus(4)
    fake = install_fake_cupy(monkeypatch, gpus=4, nvml=nvml)
    choice = choose_backends(None, AUTO)
    assert [b.index for b in choice.backends] == [0, 1, 2, 3]
    assert [b.device for b in choice.backends] == [g.name for g in nvml.gpus]
    assert (choice.note, choice.fallback) == ("", False)
    # Each backend has its own stream, made on its own device.
    assert [b.stream.device_id for b in choice.backends] == [0, 1, 2, 3]
    # Telemetry pairs with workers by UUID, NVML's format.
    nvml.nvmlInit()
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(4)]
    nvml_uuids = [nvml.nvmlDeviceGetUUID(h) for h in handles]
    nvml.nvmlShutdown()
    assert [b.uuid for b in choice.backends] == nvml_uuids
    assert [b.pci_bus_id for b in choice.backends] == [f"0000:{i:02x}:00.0" for i in (1, 2, 3, 4)]
    # The same device gives the same backend (its stream lives as long as the process).
    assert choose_backends([2], AUTO).backends[0] is choice.backends[2]
    assert len(fake.gpus) == 4


def test_selected_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_cupy(monkeypatch, gpus=4)
    assert [b.index for b in choose_backends([0, 2], AUTO).backends] == [0, 2]
    assert [b.index for b in choose_backends([3, 1], FORCED).backends] == [3, 1]
    with pytest.raises(BackendError) as err:
        choose_backends([5], AUTO)
    assert str(err.value) == "GPU 5 is not a visible CUDA device: the visible ones are 0-3"


def test_selection_counts_in_the_visible_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # The runtime renumbers what CUDA_VISIBLE_DEVICES leaves visible from 0 (the fake's two
    # devices stand for physical GPUs 1 and 3): --gpus uses those numbers, and says so.
    install_fake_cupy(monkeypatch, gpus=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert [b.index for b in choose_backends([1], AUTO).backends] == [1]
    with pytest.raises(BackendError) as err:
        choose_backends([3], AUTO)
    assert str(err.value) == (
        "GPU 3 is not a visible CUDA device: the visible ones are 0-1 (CUDA_VISIBLE_DEVICES='1,3')"
    )


def test_auto_leaves_out_a_failing_device_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install_fake_cupy(monkeypatch, gpus=3)
    fake.gpus[1].gemm_error = NO_CUBLAS
    choice = choose_backends(None, AUTO)
    assert [b.index for b in choice.backends] == [0, 2]
    assert choice.note == f"GPU 1 not used: {CUBLAS_REASON}"
    # Forced: the failing device is refused unless it is left out of the selection.
    with pytest.raises(BackendError) as err:
        choose_backends(None, FORCED)
    assert str(err.value) == f"OMNITENSOR_BACKEND=cupy but GPU 1 cannot be used: {CUBLAS_REASON}"
    assert [b.index for b in choose_backends([2, 0], FORCED).backends] == [2, 0]
    # Auto with only the failing device selected: NumPy, and the reason.
    only = choose_backends([1], AUTO)
    assert (only.backends[0].name, only.fallback) == ("numpy", True)
    assert only.note == f"GPU 1 not used: {CUBLAS_REASON}"


def test_numpy_forced_needs_no_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_cupy(monkeypatch, count_error=cuda_error(100))
    choice = choose_backends([0, 1], {"OMNITENSOR_BACKEND": "numpy"})
    assert ([b.name for b in choice.backends], choice.probe, choice.note) == (["numpy"], None, "")


def test_parse_gpus() -> None:
    assert parse_gpus("0,2") == (0, 2)
    assert parse_gpus(" 3 ") == (3,)
    for bad in ("", "a", "-1", "0,,1", "1.5"):
        with pytest.raises(BackendError, match="expected device numbers such as 0,2"):
            parse_gpus(bad)
    with pytest.raises(BackendError, match="listed twice"):
        parse_gpus("1,1")
