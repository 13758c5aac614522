"""Fused elementwise kernels for the encoder on the CPU, compiled by Numba.

NumPy evaluates an expression one pass at a time, each pass reading and writing a whole
array: the exact GELU alone is ~20 passes over the (tokens, 1536) activations, 15% of an
encode after the GEMMs. Each kernel here reads and writes its rows once and LLVM vectorizes
the loop: the GELU went from ~5 to ~0.6 ns an element on this project's 2-core Xeon, and an
encode-only run of 2,000 sentences from 4.45 s to 2.83 s (medians of 5,
``python -m tests.bench.inference_bench --with-numpy-passes``). The math is the encoder's:
the NumPy passes in ``encoder.py`` stay the reference, the path on a GPU, and the fallback
when Numba is missing, fails to import or fails to compile here.

Two settings make the loops vectorize: ``fastmath`` (reassociation for the reductions) and
``error_model="numpy"`` (Python's zero-division check in a loop stops LLVM's vectorizer).
There is no SIMD ``exp`` without Intel's SVML, so erf is a rational function instead of the
NumPy path's A&S formula (both ~1e-7; see ``ERF_P``).
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ERF_CLAMP",
    "ERF_P",
    "ERF_Q",
    "FusedKernels",
    "fused_loaded",
    "fused_status",
    "load_fused",
]

Rows = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float32]

# erf(z) ~ z P(z^2) / Q(z^2) for |z| < ERF_CLAMP, sign(z) beyond: fitted here by weighted
# least squares (Lawson iterations) on [0, ERF_CLAMP], the form Eigen and XLA use. Max error
# 1.8e-8 in float64, 3.7e-7 evaluated in float32 (over -6..6 against math.erf).
ERF_CLAMP = 3.832506856900711  # 1 - erf is below half a float32 ulp of 1 (2^-24) past this
ERF_P = (
    1.1283790059813912,
    0.18833794591922903,
    0.05137378612772907,
    0.003543456589924828,
    0.0002325668792760019,
)
ERF_Q = (
    1.0,
    0.5002415926979068,
    0.11228327763316184,
    0.014340771600598533,
    0.0010513934405428848,
    2.3609037281335307e-05,
    -1.1637112944766616e-07,
)
_ROWS_BIAS = "void(float32[:, ::1], float32[::1])"
_RESIDUAL_LN = (
    "void(float32[:, ::1], float32[::1], float32[:, ::1], float32[::1], float32[::1], float32)"
)
# Set to 0 to run the NumPy passes even where Numba is installed (a comparison, a bug hunt).
DISABLE_ENV = "OMNITENSOR_FUSED_KERNELS"


@dataclass(frozen=True)
class FusedKernels:
    """The compiled kernels; each works in place on C-contiguous float32 arrays and releases
    the GIL, so the encoder's worker threads run them side by side."""

    # x <- sqrt(2) GELU(sqrt(2) (x + bias)): the scaled GELU of ``encoder.gelu_scaled``.
    bias_gelu: Callable[[Rows, Vector], None]
    # x <- LayerNorm(x + bias + residual) * gamma + beta, row by row.
    residual_layer_norm: Callable[[Rows, Vector, Rows, Vector, Vector, float], None]


def fused_status() -> str:
    """``numba <version>`` when the fused kernels are in use, else why not (one line)."""
    with _loading:
        return _load()[1]


def load_fused() -> FusedKernels | None:
    """The compiled kernels, or None (no Numba, disabled, or compilation failed)."""
    with _loading:
        return _load()[0]


def fused_loaded() -> bool:
    """True when this process has loaded the kernels already (no cost to use them)."""
    with _loading:
        return _load.cache_info().currsize > 0 and _load()[0] is not None


_loading = threading.Lock()  # one compilation, however many encoders start at once


@functools.cache
def _load() -> tuple[FusedKernels | None, str]:
    if os.environ.get(DISABLE_ENV, "1").strip() == "0":
        return None, f"numpy passes ({DISABLE_ENV}=0)"
    try:
        numba = importlib.import_module("numba")
    except ImportError:
        return None, "numpy passes (numba is not installed)"
    except Exception as exc:  # llvmlite's library will not load, no executable memory...
        return None, f"numpy passes (numba failed to import: {type(exc).__name__}: {exc})"
    if numba.config.DISABLE_JIT:  # the "kernels" would be Python loops, 500x slower
        return None, "numpy passes (NUMBA_DISABLE_JIT is set)"
    try:
        kernels = _compile(numba, cache=True)
    except Exception:  # no writable cache directory (a read-only install, no home)
        try:
            kernels = _compile(numba, cache=False)
        except Exception as exc:  # a broken llvmlite or an unsupported CPU: keep working
            return None, f"numpy passes (numba failed: {type(exc).__name__}: {exc})"
    return kernels, f"numba {numba.__version__}"


def _compile(numba: Any, *, cache: bool) -> FusedKernels:
    # Eager compilation with explicit signatures (~1.4 s); ``cache`` keeps the machine code
    # beside this file, or in the user's cache directory when this one is read-only, so
    # later processes load it instead (~0.3 s).
    jit = functools.partial(
        numba.njit, fastmath=True, error_model="numpy", nogil=True, boundscheck=False, cache=cache
    )
    p0, p1, p2, p3, p4 = (np.float32(c) for c in ERF_P)
    q0, q1, q2, q3, q4, q5, q6 = (np.float32(c) for c in ERF_Q)
    lo, hi = np.float32(-ERF_CLAMP), np.float32(ERF_CLAMP)

    @jit(_ROWS_BIAS)  # type: ignore[untyped-decorator]
    def bias_gelu(x: Rows, bias: Vector) -> None:  # pragma: no cover - compiled
        rows, cols = x.shape
        for i in range(rows):
            for j in range(cols):
                u = x[i, j] + bias[j]
                z = min(max(u, lo), hi)
                s = z * z
                p = (((p4 * s + p3) * s + p2) * s + p1) * s + p0
                q = (((((q6 * s + q5) * s + q4) * s + q3) * s + q2) * s + q1) * s + q0
                erf = z * p / q
                # Exactly +-1 past the clamp (where erf rounds to 1 anyway): the rational
                # function is ~1e-7 short of it there, an error that would grow with |u|.
                erf = np.float32(1.0) if u >= hi else erf
                erf = np.float32(-1.0) if u <= lo else erf
                x[i, j] = u + u * erf

    @jit(_RESIDUAL_LN)  # type: ignore[untyped-decorator]
    def residual_layer_norm(  # noqa: PLR0917 - a compiled kernel takes positional arrays
        x: Rows, bias: Vector, residual: Rows, gamma: Vector, beta: Vector, eps: float
    ) -> None:  # pragma: no cover - compiled
        rows, cols = x.shape
        inv = np.float32(1.0) / np.float32(cols)
        for i in range(rows):
            total = np.float32(0.0)
            for j in range(cols):
                v = x[i, j] + bias[j] + residual[i, j]
                x[i, j] = v
                total += v
            mean = total * inv
            spread = np.float32(0.0)
            for j in range(cols):
                d = x[i, j] - mean
                spread += d * d
            rstd = np.float32(1.0) / np.sqrt(spread * inv + eps)
            for j in range(cols):
                x[i, j] = (x[i, j] - mean) * rstd * gamma[j] + beta[j]

    return FusedKernels(bias_gelu=bias_gelu, residual_layer_norm=residual_layer_norm)
