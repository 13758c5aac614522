"""Choose the backends the kernels run on: CuPy on each CUDA device that proves itself, or NumPy.

``OMNITENSOR_BACKEND`` says which (``auto``, the default; ``numpy``; ``cupy``):

* ``auto``: one backend per usable CUDA device (all visible ones, or those selected), each
  proven by ``kernels.cuda_probe`` first; with none, NumPy, and :class:`BackendChoice`
  keeps the exact reason for the node's status.
* ``cupy``: the same, but CuPy unusable, or a selected device failing its probe, is a
  :class:`BackendError`: a node told to use the GPU must not start on the CPU instead.
* ``numpy``: the host only.

Device numbers are CUDA device ids: indices in the set ``CUDA_VISIBLE_DEVICES`` leaves
visible. The probe sets ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (unless set) before CUDA starts,
so with nothing hidden they are ``nvidia-smi``'s numbers; ``Backend.uuid`` ties each one
to its NVML telemetry whatever the order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kernels.backend_base import (
    BACKEND_CHOICES,
    ENV_VAR,
    Array,
    Backend,
    BackendError,
    BenchmarkCancelled,
    numpy_backend,
    parse_cache_size,
    timed_trials,
)
from kernels.cuda_probe import CudaProbe, DeviceProbe, cupy_backend, probe_cuda

__all__ = [
    "BACKEND_CHOICES",
    "ENV_VAR",
    "Array",
    "Backend",
    "BackendChoice",
    "BackendError",
    "BenchmarkCancelled",
    "backends_for",
    "choose_backends",
    "cupy_status",
    "numpy_backend",
    "parse_cache_size",
    "parse_gpus",
    "select_backend",
    "timed_trials",
]


@dataclass(frozen=True)
class BackendChoice:
    """The backends to run work on (one per device), and what the node should say about it."""

    backends: tuple[Backend, ...]
    probe: CudaProbe | None  # None when NumPy was asked for
    note: str  # "" or one line: why not CuPy, or which selected devices were left out

    @property
    def fallback(self) -> bool:
        """True when CUDA devices were wanted or possible but the work runs on NumPy."""
        return self.probe is not None and not self.backends[0].is_cupy


def choose_backends(
    devices: Sequence[int] | None = None, env: Mapping[str, str] | None = None
) -> BackendChoice:
    """Probe CuPy (once per process) and pick the backends; see the module docstring.

    ``devices`` (``--gpus 0,2``) selects CUDA device ids; None means every usable one.
    Raises :class:`BackendError` (one line) for a bad ``OMNITENSOR_BACKEND``, a device id
    that is not visible, or a forced ``cupy`` that cannot run.
    """
    choice = _choice(os.environ if env is None else env)
    if choice == "numpy":
        return BackendChoice((numpy_backend(),), None, "")
    probe = probe_cuda()
    forced = choice == "cupy"
    if not probe.ok:
        if forced:
            raise BackendError(f"{ENV_VAR}=cupy but CuPy cannot be used: {probe.reason}")
        return BackendChoice((numpy_backend(),), probe, f"CuPy not used: {probe.reason}")
    wanted = _wanted(devices, probe)
    skipped = [d for d in wanted if not d.usable]
    if forced and skipped:
        bad = skipped[0]
        raise BackendError(f"{ENV_VAR}=cupy but GPU {bad.index} cannot be used: {bad.reason}")
    note = "; ".join(f"GPU {d.index} not used: {d.reason}" for d in skipped)
    usable = [d for d in wanted if d.usable]
    if not usable:
        return BackendChoice((numpy_backend(),), probe, note)
    return BackendChoice(tuple(cupy_backend(d.index) for d in usable), probe, note)


def backends_for(
    devices: Sequence[int] | None = None, env: Mapping[str, str] | None = None
) -> list[Backend]:
    """One backend per device to run work on (a single NumPy backend without CUDA)."""
    return list(choose_backends(devices, env).backends)


def select_backend(env: Mapping[str, str] | None = None) -> Backend:
    """The first backend :func:`choose_backends` picks (the benchmark's, on one device)."""
    return choose_backends(None, env).backends[0]


def cupy_status() -> tuple[bool, str]:
    """Say whether CuPy can run here: ``(True, "")`` or ``(False, reason)``."""
    probe = probe_cuda()
    return probe.ok, probe.reason


def parse_gpus(text: str) -> tuple[int, ...]:
    """Parse a ``--gpus`` value such as ``0,2`` (CUDA device ids; no duplicates)."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p.isdigit() for p in parts):
        raise BackendError(f"--gpus {text!r}: expected device numbers such as 0,2")
    ids = tuple(int(p) for p in parts)
    if len(set(ids)) != len(ids):
        raise BackendError(f"--gpus {text!r}: a device is listed twice")
    return ids


def _choice(environ: Mapping[str, str]) -> str:
    raw = environ.get(ENV_VAR, "auto")
    choice = raw.strip().lower() or "auto"
    if choice not in BACKEND_CHOICES:
        raise BackendError(f"{ENV_VAR}={raw} is not one of {', '.join(BACKEND_CHOICES)}")
    return choice


def _wanted(devices: Sequence[int] | None, probe: CudaProbe) -> list[DeviceProbe]:
    if devices is None:
        return list(probe.devices)
    by_index = {d.index: d for d in probe.devices}
    for index in devices:
        if index not in by_index:
            last = len(probe.devices) - 1
            visible = f" (CUDA_VISIBLE_DEVICES={probe.visible!r})" if probe.visible else ""
            raise BackendError(
                f"GPU {index} is not a visible CUDA device: the visible ones are 0-{last}{visible}"
            )
    return [by_index[i] for i in dict.fromkeys(devices)]
