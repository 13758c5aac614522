"""The node's self-benchmark: GEMM throughput, memory bandwidth and a verified product.

``run_suite`` returns a JSON-serialisable dict. On the NumPy backend a full run also
measures ``blas_peak_tflops``, the best float32 ``numpy.matmul`` rate over a few sizes, and
``gemm_efficiency`` = our float32 GEMM rate / that peak: the efficiency of our kernel against
this machine's BLAS peak, not against the CPU's theoretical FLOP rate. Our NumPy kernel is
``matmul`` itself, so expect a value near 1 (noise can push it slightly above).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kernels.backend import Backend, BenchmarkCancelled
from kernels.bandwidth import BandwidthResult, benchmark_bandwidth
from kernels.freivalds import commit, verify_seeded
from kernels.gemm import GemmResult, benchmark_gemm, gemm, make_operands

__all__ = ["BLAS_PEAK_SIZES", "STAGES", "BenchmarkCancelled", "run_suite", "stage_names"]

STAGE_GEMM_FP32 = "gemm_fp32"
STAGE_GEMM_FP16 = "gemm_fp16"
STAGE_BLAS_PEAK = "blas_peak"
STAGE_BANDWIDTH = "bandwidth"
STAGE_VERIFY = "verify"
STAGE_INFERENCE = "inference"
# Every stage in the order it runs; blas_peak only runs in a full run on NumPy.
STAGES = (
    STAGE_GEMM_FP32,
    STAGE_GEMM_FP16,
    STAGE_BLAS_PEAK,
    STAGE_BANDWIDTH,
    STAGE_VERIFY,
    STAGE_INFERENCE,
)

BLAS_PEAK_SIZES = (1024, 2048, 3072)
_FULL_BANDWIDTH_MIN_BYTES = 256 * 1024 * 1024
_VERIFY_ROUNDS = 2

ProgressFn = Callable[[str, float], None]


def stage_names(
    backend: Backend, *, quick: bool = False, inference: bool = True
) -> tuple[str, ...]:
    """The stages ``run_suite(backend, quick=quick)`` will report, in order."""
    with_peak = backend.name == "numpy" and not quick
    return tuple(
        s
        for s in STAGES
        if (s != STAGE_BLAS_PEAK or with_peak) and (s != STAGE_INFERENCE or inference)
    )


def gemm_sizes(backend: Backend, *, quick: bool) -> dict[str, int]:
    """Matrix size per dtype. NumPy's float16 matmul has no BLAS path and is very slow."""
    if quick:
        return {"float32": 512, "float16": 256}
    if backend.is_cupy:
        return {"float32": 8192, "float16": 8192}
    return {"float32": 2048, "float16": 512}


def run_suite(
    backend: Backend,
    *,
    quick: bool = False,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int | None = None,
    inference: bool = True,
    model_dir: Path | None = None,
) -> dict[str, object]:
    """Run every stage on the backend's device; raises BenchmarkCancelled when stopped.

    The inference stage encodes sentences with the all-MiniLM-L6-v2 model (from
    ``model_dir`` or where it is installed); without the model it reports how to get it.
    """
    with backend.activate():
        results = _run(backend, quick=quick, progress=progress, should_stop=should_stop, seed=seed)
        if inference:
            from kernels.inference.bench import run_inference_stage

            report = _reporter(progress)
            report(STAGE_INFERENCE, 0.0)
            results["inference"] = run_inference_stage(
                backend,
                model_dir=model_dir,
                quick=quick,
                should_stop=should_stop,
                progress=_stage_progress(report, STAGE_INFERENCE),
            )
            report(STAGE_INFERENCE, 1.0)
        return results


def _run(
    backend: Backend,
    *,
    quick: bool,
    progress: ProgressFn | None,
    should_stop: Callable[[], bool] | None,
    seed: int | None,
) -> dict[str, object]:
    report = _reporter(progress)
    seed = secrets.randbits(63) if seed is None else seed
    sizes = gemm_sizes(backend, quick=quick)
    trials = 3 if quick else 5

    def check_stop() -> None:
        if should_stop is not None and should_stop():
            raise BenchmarkCancelled("benchmark cancelled")

    results: dict[str, object] = {
        "backend": backend.name,
        "device": backend.device,
        "device_index": backend.index,  # CUDA device id; None on NumPy
        "uuid": backend.uuid,  # matches the GPU's telemetry (NVML UUID); "" on NumPy
        "llc_bytes": backend.llc_bytes,
        "quick": quick,
        "seed": seed,
    }

    gemm_results: dict[str, GemmResult] = {}
    for stage, dtype in ((STAGE_GEMM_FP32, "float32"), (STAGE_GEMM_FP16, "float16")):
        check_stop()
        report(stage, 0.0)
        gemm_results[dtype] = benchmark_gemm(
            backend,
            sizes[dtype],
            dtype,
            trials=trials,
            seed=seed,
            should_stop=should_stop,
            progress=_stage_progress(report, stage),
        )
    results["gemm"] = {
        "fp32": _gemm_dict(gemm_results["float32"]),
        "fp16": _gemm_dict(gemm_results["float16"]),
    }

    if STAGE_BLAS_PEAK in stage_names(backend, quick=quick):
        check_stop()
        peak = _blas_peak_tflops(backend, report, should_stop)
        results["blas_peak_tflops"] = peak
        results["gemm_efficiency"] = gemm_results["float32"].tflops / peak

    check_stop()
    report(STAGE_BANDWIDTH, 0.0)
    bandwidth = benchmark_bandwidth(
        backend,
        min_bytes=None if quick else _FULL_BANDWIDTH_MIN_BYTES,
        # A quick run uses the smallest arrays that still defeat the cache: 4 x LLC.
        max_bytes=4 * backend.llc_bytes if quick else None,
        trials=trials,
        should_stop=should_stop,
        progress=_stage_progress(report, STAGE_BANDWIDTH),
    )
    results["bandwidth"] = _bandwidth_dict(bandwidth)

    check_stop()
    report(STAGE_VERIFY, 0.0)
    results.update(_verify_one_product(backend, sizes["float32"], seed))
    report(STAGE_VERIFY, 1.0)
    return results


def _verify_one_product(backend: Backend, n: int, seed: int) -> dict[str, object]:
    # Play both sides of the protocol: compute and commit as a worker would, then check as
    # the coordinator does, regenerating A and B from the seed on the host. The fp32 GEMM
    # is true fp32 on CuPy (kernels/cuda_probe.pin_fp32): TF32 would fail this check.
    a, b = make_operands(backend, n, "float32", seed)
    c = backend.to_host(gemm(backend, a, b))
    del a, b
    commitment = commit(c)
    # The random vectors must be drawn only after the commitment exists.
    rng = np.random.default_rng()
    check = verify_seeded(seed, n, "float32", c, commitment, rounds=_VERIFY_ROUNDS, rng=rng)
    return {
        "verified": check.ok,
        "freivalds": {
            "n": n,
            "dtype": "float32",
            "rounds": check.rounds,
            "max_abs_error": check.max_abs_error,
            "tolerance": check.tolerance,
            "reason": check.reason,
        },
    }


def _blas_peak_tflops(
    backend: Backend, report: ProgressFn, should_stop: Callable[[], bool] | None
) -> float:
    # Progress weighted by work: the largest size dominates the stage's time.
    work = [n**3 for n in BLAS_PEAK_SIZES]
    total = sum(work)
    done = 0
    best = 0.0
    report(STAGE_BLAS_PEAK, 0.0)
    for n, w in zip(BLAS_PEAK_SIZES, work, strict=True):

        def step(fraction: float, base: int = done, w: int = w) -> None:
            report(STAGE_BLAS_PEAK, (base + fraction * w) / total)

        result = benchmark_gemm(
            backend, n, "float32", trials=3, should_stop=should_stop, progress=step
        )
        best = max(best, result.tflops)
        done += w
    return best


def _gemm_dict(result: GemmResult) -> dict[str, Any]:
    return {
        "dtype": result.dtype,
        "n": result.n,
        "tflops": result.tflops,
        "median_s": result.median_s,
        "trials": result.trials,
    }


def _bandwidth_dict(result: BandwidthResult) -> dict[str, Any]:
    return {
        "kernel": result.kernel,
        "gbps": result.gbps,
        "array_bytes": result.array_bytes,
        "bytes_moved": result.bytes_moved,
        "median_s": result.median_s,
        "trials": result.trials,
    }


def _stage_progress(report: ProgressFn, stage: str) -> Callable[[float], None]:
    return lambda fraction: report(stage, fraction)


def _reporter(progress: ProgressFn | None) -> ProgressFn:
    if progress is None:
        return lambda _stage, _fraction: None
    return progress
