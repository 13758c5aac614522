"""The fake CuPy's machinery (devices, streams, events, arrays); use it via fake_devices."""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.sha256 import host_hash

NOT_READY = 600
INVALID_HANDLE = 400
_NAMES = {
    2: "cudaErrorMemoryAllocation",
    35: "cudaErrorInsufficientDriver",
    100: "cudaErrorNoDevice",
    400: "cudaErrorInvalidResourceHandle",
    600: "cudaErrorNotReady",
    803: "cudaErrorSystemDriverMismatch",
}


class CUDARuntimeError(RuntimeError):
    """Like CuPy's: a RuntimeError with ``.status`` and "name: message" text."""

    def __init__(self, status: int, message: str = "fake CUDA error") -> None:
        self.status = status
        super().__init__(f"{_NAMES.get(status, 'cudaErrorUnknown')}: {message}")


def cuda_error(status: int) -> CUDARuntimeError:
    """A CUDARuntimeError as CuPy raises it, for ``count_error`` or a device's errors."""
    return CUDARuntimeError(status)


def tf32_round(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Round float32 values to TF32 (10 mantissa bits), ties away from zero."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


@dataclass
class FakeGpu:
    """One fake device: what it reports, how fast it is, what it has run, what fails."""

    name: str = "Fake GPU 9000"
    uuid: bytes = b""
    l2_bytes: int = 6 << 20
    flops: float = 50e12  # simulated GEMM rate, FLOP/s
    bandwidth: float = 900e9  # simulated memory rate, B/s
    gemm_error: BaseException | None = None  # raised by matmul on this device
    compile_error: BaseException | None = None  # raised by kernels CuPy would compile
    raw_error: BaseException | None = None  # raised by RawKernel launches only
    tf32_forced: bool = False
    gemms: int = 0
    kernels: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class FakeArray(np.ndarray):  # type: ignore[type-arg]
    """A NumPy array that remembers the device it lives on (the current one when made)."""

    device_id: int

    def __array_finalize__(self, obj: Any) -> None:
        self.device_id = getattr(obj, "device_id", _state.device)

    def get(self, stream: Any = None) -> npt.NDArray[Any]:
        return np.array(self, copy=True)

    # CuPy's ndarray.device is a Device; NumPy 2's is the string "cpu".
    @property
    def device(self) -> FakeDevice:  # type: ignore[override]
        return FakeDevice(self.device_id)


class _Thread(threading.local):
    def __init__(self) -> None:
        self.device = 0
        self.device_stack: list[int] = []
        self.streams: dict[int, list[FakeStream]] = {}


_state = _Thread()


def reset_thread_state() -> None:
    """This thread back on device 0 with no device or stream pushed (a new fake's start)."""
    _state.device, _state.device_stack, _state.streams = 0, [], {}


class FakeStream:
    """A stream on one device with a simulated clock: queued work advances ``clock``."""

    def __init__(self, cupy: FakeCupy, device_id: int | None = None) -> None:
        self._cupy = cupy
        self.device_id = _state.device if device_id is None else device_id
        self.clock = 0.0
        self.done_until = 0.0
        self.syncs = 0

    def launch(self, seconds: float) -> None:
        self.clock += seconds

    def synchronize(self) -> None:
        self.syncs += 1
        self.done_until = self.clock

    def __enter__(self) -> FakeStream:
        if self.device_id != _state.device:
            raise RuntimeError(
                f"The device that the stream is created on ({self.device_id}) does not match "
                f"with the current device ({_state.device})"
            )
        _state.streams.setdefault(self.device_id, []).append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _state.streams[self.device_id].pop()


class FakeEvent:
    """An event of the current device; its time is its stream's clock when recorded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.device_id = _state.device
        self.stream: FakeStream | None = None
        self.t = 0.0
        self._synced = False

    def record(self, stream: FakeStream | None = None) -> None:
        stream = stream or _current_stream()
        if stream.device_id != self.device_id:
            raise CUDARuntimeError(INVALID_HANDLE, "event and stream are on different devices")
        self.stream, self.t, self._synced = stream, stream.clock, False

    def synchronize(self) -> None:
        if self.stream is not None:
            self.stream.done_until = max(self.stream.done_until, self.t)
            self._synced = True

    @property
    def done(self) -> bool:
        return self.stream is not None and (self._synced or self.stream.done_until >= self.t)


def _current_stream() -> FakeStream:
    stack = _state.streams.get(_state.device)
    if stack:
        return stack[-1]
    return _fake().null_streams[_state.device]


def _fake() -> FakeCupy:
    module = sys.modules.get("cupy")
    assert isinstance(module, FakeCupy), "the fake CuPy is not installed"
    return module


class FakeDevice:
    """``cupy.cuda.Device``: a per-thread context manager over the current device."""

    def __init__(self, device: int | None = None) -> None:
        self.id = _state.device if device is None else int(device)

    def __enter__(self) -> FakeDevice:
        _state.device_stack.append(_state.device)
        _fake().runtime.setDevice(self.id)
        return self

    def __exit__(self, *exc: object) -> None:
        _state.device = _state.device_stack.pop()

    def use(self) -> FakeDevice:
        _fake().runtime.setDevice(self.id)
        return self

    def synchronize(self) -> None:
        _fake().runtime.complete_device(self.id)

    @property
    def pci_bus_id(self) -> str:
        return f"0000:{self.id + 1:02X}:00.0"

    @property
    def attributes(self) -> dict[str, int]:
        return {"L2CacheSize": _fake().gpus[self.id].l2_bytes}


class _Runtime:
    """``cupy.cuda.runtime``: device count and properties, versions, the current device."""

    CUDARuntimeError = CUDARuntimeError

    def __init__(self, cupy: FakeCupy) -> None:
        self._cupy = cupy

    def getDeviceCount(self) -> int:
        if self._cupy.count_error is not None:
            raise self._cupy.count_error
        return len(self._cupy.gpus)

    def getDevice(self) -> int:
        return _state.device

    def setDevice(self, device: int) -> None:
        if not 0 <= device < len(self._cupy.gpus):
            raise CUDARuntimeError(101, "invalid device ordinal")
        _state.device = device

    def getDeviceProperties(self, device: int) -> dict[str, Any]:
        gpu = self._cupy.gpus[device]
        return {"name": gpu.name.encode(), "uuid": gpu.uuid, "l2CacheSize": gpu.l2_bytes}

    def driverGetVersion(self) -> int:
        return self._cupy.driver_version

    def runtimeGetVersion(self) -> int:
        return self._cupy.runtime_version

    def deviceSynchronize(self) -> None:
        self.complete_device(_state.device)

    def complete_device(self, device: int) -> None:
        for stream in self._cupy.streams:
            if stream.device_id == device:
                stream.done_until = stream.clock


class _Cuda(types.SimpleNamespace):
    pass


class FakeCupy(types.ModuleType):
    """The module installed as ``cupy``; attributes it does not define are NumPy's."""

    def __init__(
        self,
        gpus: Sequence[FakeGpu],
        *,
        count_error: BaseException | None = None,
        driver_version: int = 12040,
        runtime_version: int = 12090,
    ) -> None:
        super().__init__("cupy")
        self.gpus = list(gpus)
        self.count_error = count_error
        self.driver_version = driver_version
        self.runtime_version = runtime_version
        self.streams: list[FakeStream] = []
        self.runtime = _Runtime(self)
        self.null_streams = [self._new_stream(i) for i in range(len(self.gpus))]
        self.compute_types: dict[str, int] = {"float32": 0}
        linalg = types.SimpleNamespace(
            COMPUTE_TYPE_TBD=0, COMPUTE_TYPE_DEFAULT=1, COMPUTE_TYPE_TF32=7
        )
        self._core = types.SimpleNamespace(
            _routines_linalg=linalg, set_compute_type=self.set_compute_type
        )
        self.cuda = _Cuda(
            runtime=self.runtime,
            Device=FakeDevice,
            Event=FakeEvent,
            Stream=lambda *a, **k: self._new_stream(None),
            get_current_stream=lambda device_id=-1: _current_stream(),
            get_elapsed_time=self.get_elapsed_time,
        )
        self.ElementwiseKernel = self._elementwise
        self.RawKernel = self._raw_kernel

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)  # dtypes, reshape helpers, ... behave as NumPy's

    # ---- arrays: made on the current device ----

    def asarray(self, a: Any, dtype: Any = None) -> FakeArray:
        return _on_device(np.array(a, dtype=dtype, copy=True))

    def empty(self, shape: Any, dtype: Any = np.float64) -> FakeArray:
        return _on_device(np.empty(shape, dtype=dtype))

    def zeros(self, shape: Any, dtype: Any = np.float64) -> FakeArray:
        return _on_device(np.zeros(shape, dtype=dtype))

    def ones(self, shape: Any, dtype: Any = np.float64) -> FakeArray:
        return _on_device(np.ones(shape, dtype=dtype))

    def full(self, shape: Any, value: Any, dtype: Any = None) -> FakeArray:
        return _on_device(np.full(shape, value, dtype=dtype))

    def arange(self, *args: Any, **kwargs: Any) -> FakeArray:
        return _on_device(np.arange(*args, **kwargs))

    @staticmethod
    def asnumpy(a: Any, stream: Any = None) -> npt.NDArray[Any]:
        return np.array(a, copy=True)

    # ---- work: on the current device's current stream ----

    def matmul(self, a: Any, b: Any, out: Any = None) -> FakeArray:
        # ``out`` as cupy.matmul takes it: the product lands in a preallocated device array.
        gpu = self._work_on(a, b) if out is None else self._work_on(a, b, out)
        if gpu.gemm_error is not None:
            raise gpu.gemm_error
        x, y = np.asarray(a), np.asarray(b)
        if x.dtype == np.float32 and (gpu.tf32_forced or self._tf32()):
            x, y = tf32_round(x), tf32_round(y)
        if out is not None:
            np.matmul(x, y, out=np.asarray(out))
            result: FakeArray = out
        else:
            result = _on_device(np.matmul(x, y))
        with gpu.lock:
            gpu.gemms += 1
        _current_stream().launch(2.0 * x.shape[0] * y.shape[-1] * x.shape[-1] / gpu.flops)
        return result

    def set_compute_type(self, dtype: Any, compute_type: int) -> None:
        self.compute_types[np.dtype(dtype).name] = compute_type

    def _tf32(self) -> bool:
        if self.compute_types["float32"] == 0:  # read once, at the first float32 GEMM
            self.compute_types["float32"] = 7 if int(os.getenv("CUPY_TF32", "0")) > 0 else 1
        return self.compute_types["float32"] == 7

    def get_elapsed_time(self, start: FakeEvent, end: FakeEvent) -> float:
        if not (start.done and end.done):
            raise CUDARuntimeError(NOT_READY, "device not ready")
        return (end.t - start.t) * 1e3  # CuPy reports milliseconds

    def _elementwise(self, in_params: str, out_params: str, body: str, name: str) -> Any:
        fn = _BODIES.get(body)
        if fn is None:
            raise NotImplementedError(f"the fake CuPy has no elementwise kernel for {body!r}")
        n_in = len(in_params.split(","))

        def call(*args: Any) -> Any:
            gpu = self._work_on(*args)
            if gpu.compile_error is not None:
                raise gpu.compile_error
            ins = [np.asarray(a) for a in args[:n_in]]
            out = args[n_in] if len(args) > n_in else _on_device(np.empty_like(ins[0]))
            out[...] = fn(*ins)
            nbytes = sum(np.asarray(a).nbytes for a in args[:n_in] if np.ndim(a)) + out.nbytes
            with gpu.lock:
                gpu.kernels += 1
            _current_stream().launch(nbytes / gpu.bandwidth)
            return out

        return call

    def _raw_kernel(self, source: str, name: str) -> Any:
        if name != "sha256_tagged":
            raise NotImplementedError(f"the fake CuPy has no raw kernel {name!r}")

        def call(grid: tuple[int], block: tuple[int], args: tuple[Any, ...]) -> None:
            rows, _n, _w, tag, swap, out = args
            gpu = self._work_on(rows, out)
            error = gpu.raw_error or gpu.compile_error
            if error is not None:
                raise error
            out[...] = host_hash(np.asarray(rows), int(tag), bool(swap))
            with gpu.lock:
                gpu.kernels += 1

        return call

    def _work_on(self, *arrays: Any) -> FakeGpu:
        here = _state.device
        for a in arrays:
            there = getattr(a, "device_id", here)
            if there != here:
                raise ValueError(
                    f"The device where the array resides ({there}) is different from the "
                    f"current device ({here})."
                )
        return self.gpus[here]

    def _new_stream(self, device_id: int | None) -> FakeStream:
        stream = FakeStream(self, device_id)
        self.streams.append(stream)
        return stream


_BODIES: dict[str, Any] = {
    "a = b + s * c": lambda b, c, s: b + np.float32(s) * c,
    "z = x * y + 1.0f": lambda x, y: x * y + np.float32(1.0),
}


def _on_device(a: npt.NDArray[Any]) -> FakeArray:
    out: FakeArray = a.view(FakeArray)
    out.device_id = _state.device
    return out
