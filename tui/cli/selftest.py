"""``omnitensor selftest [--gpu] [--gpus 0,2] [--quick]``: check the kernels end to end, report.

For a rig owner, one command: ``omnitensor selftest --gpu`` probes every CUDA device (a tiny
GEMM and a compiled kernel each), then on each usable one runs the GEMM benchmark against
cuBLAS's best rate, the memory bandwidth, the CUDA SHA-256 kernel against hashlib, a work
unit committed, challenged and verified, fp16 against fp32, then every device at once (one
thread each, as the node's workers), and reads NVML from the real driver, matching each
CUDA device to its telemetry by UUID. Without ``--gpu`` the same checks run on NumPy.

Exit codes: 0 when every check passed, or with ``--gpu`` on a machine with no GPU at all
(one line: ``no CUDA device: <reason>; nothing to test``); 1 when a check failed, or when
the driver shows GPUs that CuPy cannot use; 2 for bad input (``--gpus``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from core.config import Config
from core.errors import ConfigError

if TYPE_CHECKING:
    from kernels.cuda_probe import CudaProbe
    from kernels.gpu_check import Check

NOTHING = "nothing to test"
# Check statuses (kernels.gpu_check's), here so the CLI starts without importing kernels.
OK, FAIL, SKIP = "ok", "fail", "skip"


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    parser = sub.add_parser(
        "selftest",
        parents=[common],
        help="check the kernels end to end (--gpu: on every CUDA device) and report",
    )
    parser.add_argument("--gpu", action="store_true", help="check CuPy on the CUDA devices")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")


def run(args: argparse.Namespace, config: Config, as_json: bool) -> int | None:
    """Run ``selftest``; None when ``args`` names another command."""
    if args.command != "selftest":
        return None
    # --gpus is a common option (parsed into the config): the same selection as the node's.
    gpus = ",".join(str(i) for i in config.gpus) if config.gpus is not None else None
    return selftest(gpu=args.gpu, gpus=gpus, quick=args.quick, as_json=as_json)


def selftest(
    *,
    gpu: bool,
    gpus: str | None = None,
    quick: bool = False,
    as_json: bool = False,
    nvml: Any | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the checks and print the report; returns the exit code (see the module doc)."""
    # Imported here: the other commands start without NumPy and CuPy.
    from kernels.backend import BackendError, choose_backends, numpy_backend, parse_gpus
    from kernels.cuda_probe import probe_cuda
    from kernels.gpu_check import Check, run_checks

    stream = sys.stdout if out is None else out
    try:
        devices = parse_gpus(gpus) if gpus is not None else None
    except BackendError as exc:
        raise ConfigError(str(exc)) from None
    report = _Report(stream, as_json)
    if not gpu:
        report.header(f"NumPy on {numpy_backend().device}")
        run_checks([numpy_backend()], quick=quick, on_check=report.add)
        return report.finish()
    probe = probe_cuda()
    telemetry = _telemetry(nvml)
    if not probe.devices:
        seen = telemetry.get("gpu_count", 0)
        if not seen:  # no GPU anywhere: nothing to test is not a failure
            reason = probe.reason.removeprefix("no CUDA device: ")
            report.line(f"no CUDA device: {reason}; {NOTHING}", status="skip")
            return report.finish(empty_ok=True)
        report.add(Check("probe", FAIL, f"the driver shows {seen} GPU(s); CuPy: {probe.reason}"))
        return report.finish()
    report.header(_versions(probe))
    for device in probe.devices:
        if devices is None or device.index in devices:
            verdict = "usable" if device.usable else device.reason
            text = f"GPU {device.index} {device.name} ({device.uuid or 'no UUID'}): {verdict}"
            report.add(Check("probe", OK if device.usable else FAIL, text, device.index))
    try:
        choice = choose_backends(devices, {"OMNITENSOR_BACKEND": "auto"})
    except BackendError as exc:
        raise ConfigError(str(exc)) from None
    backends = [b for b in choice.backends if b.is_cupy]
    report.add(_nvml_check(telemetry, [(b.uuid, b.pci_bus_id) for b in backends]))
    if backends:
        run_checks(backends, quick=quick, on_check=report.add)
    return report.finish()


class _Report:
    """Prints each check as it completes (or, with --json, everything at the end)."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.checks: list[Check] = []
        self.lines: list[dict[str, str]] = []

    def header(self, text: str) -> None:
        self.line(text, status="info")

    def line(self, text: str, *, status: str) -> None:
        self.lines.append({"status": status, "detail": text})
        if not self.as_json:
            print(text, file=self.out, flush=True)

    def add(self, check: Check) -> None:
        self.checks.append(check)
        if not self.as_json:
            tag = {OK: "[ok]  ", FAIL: "[FAIL]", SKIP: "[skip]"}[check.status]
            print(f"{tag} {check.name:<10} {check.detail}", file=self.out, flush=True)

    def finish(self, *, empty_ok: bool = False) -> int:
        failed = sum(c.status == FAIL for c in self.checks)
        counts = {s: sum(c.status == s for c in self.checks) for s in (OK, FAIL, SKIP)}
        code = 1 if failed or (not self.checks and not empty_ok) else 0
        if self.as_json:
            checks = [
                {"name": c.name, "status": c.status, "detail": c.detail, "device": c.device}
                | {"figures": c.figures}
                for c in self.checks
            ]
            doc = {"ok": code == 0, "notes": self.lines, "checks": checks}
            print(json.dumps(doc, indent=2), file=self.out)
        elif self.checks:
            summary = f"{counts[OK]} ok, {counts[FAIL]} failed, {counts[SKIP]} skipped"
            print(f"selftest: {summary}", file=self.out)
        return code


def _versions(probe: CudaProbe) -> str:
    import cupy

    driver = probe.driver_version
    return (
        f"CuPy {cupy.__version__} (CUDA {probe.cuda_major}), driver supports CUDA "
        f"{driver // 1000}.{driver % 1000 // 10}; "
        f"{len(probe.usable)} of {len(probe.devices)} CUDA devices usable"
    )


def _telemetry(nvml: Any | None) -> dict[str, Any]:
    """One NVML sample from the driver: status and per-GPU readings (never raises)."""
    from core.node.telemetry import GpuSampler

    async def sample() -> dict[str, Any]:
        async with GpuSampler(nvml) as sampler:
            frame = await sampler.sample()
        status = frame.status
        return {
            "available": status.available,
            "reason": status.reason,
            "driver": status.driver_version,
            "gpu_count": status.gpu_count if status.available else 0,
            "gpus": frame.gpus,
        }

    return asyncio.run(sample())


def _nvml_check(telemetry: dict[str, Any], devices: list[tuple[str, str]]) -> Check:
    """NVML works and knows every CUDA device by UUID (the node pairs workers that way)."""
    from kernels.gpu_check import Check

    if not telemetry["available"]:
        return Check("nvml", FAIL, f"NVML: {telemetry['reason']}")
    gpus = telemetry["gpus"]
    readings = "; ".join(
        f"{g.index}: {g.temperature_c} C {g.power_w or 0:.0f} W {g.utilization_pct}%"
        if g.error is None
        else f"{g.index}: {g.error}"
        for g in gpus
    )
    known = {g.uuid for g in gpus}
    missing = [uuid for uuid, _pci in devices if uuid and uuid not in known]
    # CuPy may cut a UUID at a zero byte (kernels/cuda_probe.nvml_uuid): PCI pairs those.
    cut = [pci or "?" for uuid, pci in devices if not uuid]
    head = f"driver {telemetry['driver']}, {telemetry['gpu_count']} GPU(s) ({readings})"
    if missing:
        return Check("nvml", FAIL, f"{head}; CUDA devices not in NVML by UUID: {missing}")
    if cut:
        return Check("nvml", OK, f"{head}; CUDA gave no full UUID for PCI {', '.join(cut)}")
    if any(g.error is not None for g in gpus):
        return Check("nvml", FAIL, head)
    return Check("nvml", OK, f"{head}; every CUDA device matched by UUID")
