"""Prove CuPy works on each CUDA device before using it, and say exactly why when it does not.

Reviewed against CuPy 14.2.0 and the CUDA runtime's error codes. What can go wrong on a rig,
and what each looks like from Python:

* CuPy not installed: ``ImportError`` on ``import cupy``.
* No driver (no ``libcuda.so``): ``getDeviceCount`` raises ``CUDARuntimeError`` (a
  ``RuntimeError`` with ``.status``) ``cudaErrorInsufficientDriver`` and
  ``driverGetVersion()`` returns 0. A driver too old for CuPy's CUDA major gives the same
  error with a non-zero driver version.
* No device (or ``CUDA_VISIBLE_DEVICES`` hides them all): ``cudaErrorNoDevice``.
* No cuBLAS (CuPy 14's wheels bundle none; the ``[ctk]`` extra or a toolkit brings it):
  the first matmul raises ``ImportError('Failure finding "libcublasLt.so.13 or ..."')``.
* No NVRTC (the compiler behind every elementwise kernel): cuda-pathfinder's
  ``DynamicLibNotFoundError`` (a ``RuntimeError``) naming ``libnvrtc``.

So counting devices proves nothing: each visible device runs a tiny GEMM (fp32 and fp16)
and a tiny compiled elementwise kernel, checked exactly, before it is called usable.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels.backend_base import DEFAULT_LLC_BYTES, Backend, one_line

__all__ = [
    "DRIVER_FOR_CUDA",
    "CudaProbe",
    "DeviceProbe",
    "clear_probe_cache",
    "cupy_backend",
    "describe_failure",
    "normalize_pci_bus_id",
    "nvml_uuid",
    "pin_fp32",
    "probe_cuda",
]

# The oldest Linux driver branch each CUDA major runs on (minor version compatibility).
DRIVER_FOR_CUDA = {12: 525, 13: 580}

_PROBE_K = 64
# Exact in fp32; TF32 keeps 10 mantissa bits and rounds it to 1.0, so a GEMM of it tells
# the two apart: 64 x (1 + 2**-12) = 64.015625 (exact in fp32) against 64.0.
_TF32_WITNESS = np.float32(1.0 + 2.0**-12)

_CUDA_ERRORS = {
    2: "cudaErrorMemoryAllocation",
    3: "cudaErrorInitializationError",
    35: "cudaErrorInsufficientDriver",
    46: "cudaErrorDevicesUnavailable",
    100: "cudaErrorNoDevice",
    209: "cudaErrorNoKernelImageForDevice",
    222: "cudaErrorUnsupportedPtxVersion",
    803: "cudaErrorSystemDriverMismatch",
    804: "cudaErrorCompatNotSupportedOnDevice",
}


@dataclass(frozen=True)
class DeviceProbe:
    """One visible CUDA device: ``reason`` is "" when it passed, else why it is not used."""

    index: int  # CUDA device id, an index in the visible set
    name: str
    uuid: str = ""  # NVML's form, "GPU-xxxxxxxx-xxxx-...": matches GpuSnapshot.uuid
    reason: str = ""
    pci_bus_id: str = ""  # "0000:01:00.0": the pairing key when the UUID is unreadable

    @property
    def usable(self) -> bool:
        """True when the device ran and checked every probe kernel."""
        return not self.reason


@dataclass(frozen=True)
class CudaProbe:
    """What CuPy can do here: every visible device with its verdict, or why there are none."""

    reason: str  # "" when at least one device is usable, else one line saying why not
    devices: tuple[DeviceProbe, ...] = ()
    cuda_major: int = 0  # of the CUDA runtime CuPy was built for (0: unknown)
    driver_version: int = 0  # CUDA version the driver supports, e.g. 12040 (0: no driver)
    visible: str | None = None  # CUDA_VISIBLE_DEVICES when set

    @property
    def ok(self) -> bool:
        """True when CuPy can run on at least one device."""
        return not self.reason

    @property
    def usable(self) -> tuple[DeviceProbe, ...]:
        """The devices that passed, in device order."""
        return tuple(d for d in self.devices if d.usable)

    def summary(self) -> str:
        """One line for logs and status, e.g. ``2 of 3 CUDA devices usable (2: reason)``."""
        if not self.ok:
            return self.reason
        skipped = "; ".join(f"{d.index}: {d.reason}" for d in self.devices if not d.usable)
        line = f"{len(self.usable)} of {len(self.devices)} CUDA devices usable"
        return f"{line} ({skipped})" if skipped else line


_lock = threading.Lock()
_cached: CudaProbe | None = None
_backends: dict[int, Backend] = {}


def probe_cuda() -> CudaProbe:
    """Probe CuPy and every visible device once per process (later calls reuse the result).

    Devices do not come and go under a running process (``CUDA_VISIBLE_DEVICES`` is read
    once, when CUDA initialises), so the answer is kept. Never raises.
    """
    global _cached  # noqa: PLW0603 -- one probe per process, by design
    with _lock:
        if _cached is None:
            _cached = _probe()
        return _cached


def clear_probe_cache() -> None:
    """Forget the kept probe and backends (tests swap CuPy for a fake and back)."""
    global _cached  # noqa: PLW0603
    with _lock:
        _cached = None
        _backends.clear()


def cupy_backend(index: int) -> Backend:
    """The CuPy backend of CUDA device ``index`` (made once: its stream lives as long).

    Call only for a device :func:`probe_cuda` found usable.
    """
    with _lock:
        if index not in _backends:
            _backends[index] = _make_backend(index)
        return _backends[index]


def _make_backend(index: int) -> Backend:
    import cupy

    with cupy.cuda.Device(index):
        props = cupy.cuda.runtime.getDeviceProperties(index)
        l2 = int(cupy.cuda.Device(index).attributes.get("L2CacheSize", 0))
        # A blocking stream (the default) also orders against the legacy default stream,
        # so work queued outside activate() cannot race with this backend's.
        stream = cupy.cuda.Stream()
    return Backend(
        name="cupy",
        xp=cupy,
        device=_text(props.get("name", b"")) or f"CUDA device {index}",
        llc_bytes=l2 if l2 > 0 else int(props.get("l2CacheSize", 0)) or DEFAULT_LLC_BYTES,
        index=index,
        uuid=nvml_uuid(props.get("uuid")),
        pci_bus_id=_pci_bus_id(cupy, index),
        stream=stream,
    )


def _probe() -> CudaProbe:
    # CUDA numbers devices fastest first unless told otherwise; rig owners read nvidia-smi,
    # which numbers them by PCI bus. Read once, when CUDA initialises: set it before.
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import cupy
    except ImportError:
        return CudaProbe("cupy is not installed (install the project's cuda12 or cuda13 extra)")
    except Exception as err:  # a broken install can raise anything while loading CUDA libs
        return CudaProbe(f"cupy failed to import: {one_line(err)}")
    runtime = cupy.cuda.runtime
    major = _call_int(runtime.runtimeGetVersion) // 1000
    driver = _call_int(runtime.driverGetVersion)
    try:
        count = int(runtime.getDeviceCount())
    except Exception as err:  # CUDARuntimeError (a RuntimeError), OSError from the driver...
        reason = describe_failure(err, major, driver)
        return CudaProbe(_with_visible(reason, visible), (), major, driver, visible)
    if count <= 0:
        reason = _with_visible("no CUDA device: the CUDA runtime reports 0 devices", visible)
        return CudaProbe(reason, (), major, driver, visible)
    pin_fp32(cupy)
    devices = tuple(_probe_device(cupy, i, major, driver) for i in range(count))
    reason = ""
    if not any(d.usable for d in devices):
        reasons = {d.reason for d in devices}
        reason = (
            reasons.pop()
            if len(reasons) == 1
            else "no usable CUDA device: " + "; ".join(f"{d.index}: {d.reason}" for d in devices)
        )
    return CudaProbe(reason, devices, major, driver, visible)


def _probe_device(cupy: Any, index: int, major: int, driver: int) -> DeviceProbe:
    name, uuid, pci = f"CUDA device {index}", "", ""
    try:
        with cupy.cuda.Device(index):
            props = cupy.cuda.runtime.getDeviceProperties(index)
            name = _text(props.get("name", b"")) or name
            uuid = nvml_uuid(props.get("uuid"))
            pci = _pci_bus_id(cupy, index)
            _check_gemm(cupy)
            _check_elementwise(cupy)
            cupy.cuda.Device(index).synchronize()
    except _WrongResult as err:
        return DeviceProbe(index, name, uuid, str(err), pci)
    except Exception as err:  # each library failure becomes its one-line reason
        return DeviceProbe(index, name, uuid, describe_failure(err, major, driver), pci)
    return DeviceProbe(index, name, uuid, "", pci)


class _WrongResult(Exception):
    """A probe kernel ran but computed something else."""


def _check_gemm(cupy: Any) -> None:
    a = cupy.full((16, _PROBE_K), _TF32_WITNESS, dtype=cupy.float32)
    b = cupy.ones((_PROBE_K, 16), dtype=cupy.float32)
    got = cupy.asnumpy(cupy.matmul(a, b))
    exact = np.float32(_PROBE_K * float(_TF32_WITNESS))
    if np.all(got == np.float32(_PROBE_K)):
        raise _WrongResult(
            "fp32 GEMM runs in TF32 although the kernels turned TF32 off "
            "(check CUPY_TF32 and NVIDIA_TF32_OVERRIDE); its benchmark would fail verification"
        )
    if not np.all(got == exact):
        raise _WrongResult("a test fp32 GEMM gave wrong results")
    # Work units may run in fp16: small integers, exact with fp32 accumulation.
    host = np.resize(np.array([-2, -1, 1, 2], dtype=np.float16), (16, _PROBE_K))
    half = cupy.asarray(host)
    got16 = cupy.asnumpy(cupy.matmul(half, half.T)).astype(np.float32)
    if not np.array_equal(got16, host.astype(np.float32) @ host.T.astype(np.float32)):
        raise _WrongResult("a test fp16 GEMM gave wrong results")


def _check_elementwise(cupy: Any) -> None:
    # A kernel CuPy compiles with NVRTC, as the triad and the operand generator are.
    kernel = cupy.ElementwiseKernel(
        "float32 x, float32 y", "float32 z", "z = x * y + 1.0f", "omnitensor_probe"
    )
    x = cupy.arange(256, dtype=cupy.float32)
    got = cupy.asnumpy(kernel(x, x))
    host = np.arange(256, dtype=np.float32)
    if not np.array_equal(got, host * host + np.float32(1.0)):
        raise _WrongResult("a test elementwise kernel gave wrong results")


def pin_fp32(cupy: Any) -> None:
    """Make CuPy's float32 GEMMs true fp32 in this process, whatever ``CUPY_TF32`` says.

    CuPy reads ``CUPY_TF32`` once, at the first float32 matmul, into a process-wide compute
    type (``cupy._core._routines_linalg.get_compute_type``); setting it first pins it. TF32
    would round the benchmark's [-1, 1) operands to 10 mantissa bits, far beyond the
    Freivalds tolerance of an fp32 product (kernels/freivalds.py). Work units are exact in
    TF32, so they lose only its speed; fp16 work units use tensor cores anyway.
    """
    core = getattr(cupy, "_core", None)
    linalg = getattr(core, "_routines_linalg", None)
    setter = getattr(core, "set_compute_type", None)
    default = getattr(linalg, "COMPUTE_TYPE_DEFAULT", None)
    if setter is None or default is None:
        return  # another CuPy: the probe's TF32 witness GEMM still catches TF32
    setter(np.float32, default)


def describe_failure(err: BaseException, cuda_major: int = 0, driver_version: int = 0) -> str:
    """One line saying what a CuPy failure means for the rig owner, and what to install."""
    text = one_line(err)
    low = text.lower()
    extra = f"cuda{cuda_major}" if cuda_major else "cuda12"
    install = f"install the project's `{extra}` extra, which now pulls the toolkit wheels"
    if "cublas" in low:
        return f"CuPy found no cuBLAS: {install}, or a CUDA toolkit"
    if "nvrtc" in low:
        return f"CuPy found no NVRTC (it compiles CuPy's kernels): {install}, or a CUDA toolkit"
    library = re.search(r"(lib[a-z_]+)\.so", low)
    if library and (isinstance(err, ImportError | OSError) or "failure finding" in low):
        return f"CuPy could not load {library.group(1)}: {install}, or a CUDA toolkit"
    code = _error_name(err, text)
    if code == "cudaErrorInsufficientDriver":
        if driver_version <= 0:
            return "no NVIDIA driver: the CUDA driver library (libcuda.so) was not found"
        need = DRIVER_FOR_CUDA.get(cuda_major)
        wants = f"; CuPy's CUDA {cuda_major}.x needs driver {need} or newer" if need else ""
        return f"the NVIDIA driver is too old: it supports CUDA {_version(driver_version)}{wants}"
    if code == "cudaErrorNoDevice":
        return f"no CUDA device: {text}"
    if code == "cudaErrorSystemDriverMismatch":
        return "the NVIDIA driver's kernel module and library differ: reboot after a driver update"
    if code == "cudaErrorDevicesUnavailable":
        return "the GPU is unavailable (exclusive-process mode, or in use by another process)"
    if code == "cudaErrorUnsupportedPtxVersion":
        return "the NVIDIA driver is too old for the kernels CuPy compiles: update the driver"
    if code == "cudaErrorNoKernelImageForDevice":
        return "this CuPy build has no kernels for this GPU's architecture"
    if code == "cudaErrorMemoryAllocation":
        return "out of device memory (another process holds it?)"
    if type(err).__name__ == "CompileException":
        return f"CuPy could not compile a kernel: {text[:200]}"
    return f"CuPy failed on this device: {text[:300]}"


def nvml_uuid(raw: object) -> str:
    """CUDA's 16-byte device UUID as NVML prints it (``GPU-8-4-4-4-12`` hex), or "".

    "" also when CuPy returns fewer bytes: its properties convert the UUID's ``char[16]``
    like a C string, so a UUID with a zero byte may arrive cut short (pair by PCI bus id).
    """
    if isinstance(raw, bytes | bytearray) and len(raw) == 16:
        h = bytes(raw).hex()
        return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return ""


def normalize_pci_bus_id(text: str) -> str:
    """One spelling of ``domain:bus:device.function`` (CUDA: 0000:01:00.0, NVML: 00000000:...)."""
    match = re.fullmatch(r"\s*([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-7])\s*", text)
    if match is None:
        return ""
    domain, bus, device, function = (int(g, 16) for g in match.groups())
    return f"{domain:04x}:{bus:02x}:{device:02x}.{function}"


def _pci_bus_id(cupy: Any, index: int) -> str:
    try:
        return normalize_pci_bus_id(_text(cupy.cuda.Device(index).pci_bus_id))
    except Exception:  # an attribute the fake or an old CuPy lacks: the UUID still pairs
        return ""


def _error_name(err: BaseException, text: str) -> str:
    status = getattr(err, "status", None)
    if isinstance(status, int) and status in _CUDA_ERRORS:
        return _CUDA_ERRORS[status]
    match = re.match(r"(cudaError\w+)", text)
    return match.group(1) if match else ""


def _with_visible(reason: str, visible: str | None) -> str:
    # Only "no device" can be CUDA_VISIBLE_DEVICES's doing: say what it was then.
    if visible is None or not reason.startswith("no CUDA device"):
        return reason
    return f"{reason} (CUDA_VISIBLE_DEVICES={visible!r})"


def _version(cuda_version: int) -> str:
    return f"{cuda_version // 1000}.{cuda_version % 1000 // 10}"


def _call_int(fn: Any) -> int:
    try:
        return int(fn())
    except Exception:  # no driver: the version queries fail or answer 0
        return 0


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace").strip()
    return str(value).strip()
