"""Check a claimed GEMM result C = A @ B in O(n^2) with Freivalds' algorithm.

Protocol: the worker computes C, publishes ``commit(C)`` (a SHA-256 over a canonical
encoding), and only then does the verifier draw random vectors r in {-1, +1}^n. Drawing
after the commitment matters: a worker that knew r could forge a C with C r = A B r.

Each round compares ``A (B r)`` with ``C r`` in float64 on the host. An honest C is not
exactly A B: it carries the rounding error of the precision the worker computed in. Products
are accumulated in float32 (float16 products too: NumPy and cuBLAS both accumulate half
precision in single), then stored in the result's dtype. The tolerance is the probabilistic
rounding bound (Higham and Mary, 2019), not the worst case: rounding errors behave like
independent zero-mean terms, so an entry's error grows like sqrt(k) u_acc |a_i| |b_j|, not
k u_acc, and the +-1 signs of r make row i of the check a random walk over the row's
errors. By Cauchy-Schwarz, sum_j (|a_i| . |b_j|)^2 <= ||a_i||^2 ||B||_F^2, which gives::

    tol_i = slack * (sqrt(k) * u_acc * ||a_i|| * ||B||_F  +  u_out * ||c_i||)  +  floor

with u_acc = 2**-24 (float32 accumulation), u_out the unit roundoff of C's dtype (float32:
2**-24, float16: 2**-11), ``slack`` (default 8) a safety factor for the bound being
probabilistic, and ``floor`` an absolute guard against underflow. Everything is O(n^2).
For operands uniform in [-1, 1) this is about 0.5% of a typical entry of C at n = 512 in
float32 (about 9% in float16, whose own rounding dominates), and it shrinks relative to the
entries as n grows like 1/sqrt(n) in float32.

What this catches and what it cannot:

* A deviation within the rounding bound is indistinguishable from rounding and passes.
  Forgeries smaller than tol_i pass; float32 checks are the tighter ones.
* An entry wrong by more than tol_i is caught in every round: with r_j = +-1 the wrong
  entry shows up at full size in row i of C r, so a single wrong entry is always caught.
* Errors spread over many entries can cancel in C r for a particular r. For any C with an
  entry off by more than tol_i, flipping the sign of that entry's r_j changes row i by
  more than 2 tol_i, so at most half of all r miss it: one round misses with probability
  <= 1/2 and k independent rounds with probability <= 2**-k. At least 2 rounds are run.
* Non-finite entries, a wrong shape or a result that does not match its commitment fail
  before any arithmetic.

TF32 is not covered. With ``CUPY_TF32=1`` (or cuBLAS's TF32 math mode) a float32 GEMM
first rounds A and B to 10 mantissa bits, a relative error of up to 2**-11 per operand.
Measured with TF32 emulated on NumPy (tests/kernels/test_tf32.py), the deviation is 11x the
tolerance at n = 128, 4x at the quick suite's n = 512 and about 1x at n = 2048: an honest
TF32 product fails the float32 check. The bound grows faster with n than TF32's error
(Cauchy-Schwarz), so at the full GPU size (8192) a TF32 product would pass and the suite
would report TF32 throughput as fp32. Either way the CuPy backend pins float32 GEMMs to
fp32 (``kernels.cuda_probe.pin_fp32``) and its probe checks that they are. The network's
work units are unaffected: their small-integer operands are exact in TF32
(docs/work-units.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.backend import Array, numpy_backend
from kernels.gemm import make_operands

__all__ = ["UNIT_ROUNDOFF", "FreivaldsResult", "commit", "verify", "verify_seeded"]

# Unit roundoff (half an ulp of 1.0) of each precision a worker may compute in.
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11}
# Both precisions accumulate their dot products in float32.
_ACCUMULATION_ROUNDOFF = 2.0**-24
DEFAULT_SLACK = 8.0

_COMMIT_DOMAIN = b"omnitensor-gemm-result-v1"
# Rows are converted to float64 a block at a time so an 8192 x 8192 check needs tens of
# MiB of scratch, not three more full matrices.
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class FreivaldsResult:
    """Outcome of a check; ``reason`` is "" when ``ok``, else one line saying why not."""

    ok: bool
    reason: str
    rounds: int
    max_abs_error: float
    tolerance: float


def commit(c: Array) -> str:
    """SHA-256 hex of C's dtype, shape and C-contiguous little-endian bytes."""
    host = _to_host(c)
    if host.dtype.hasobject:
        raise ValueError("cannot commit to an object array")
    canon = np.ascontiguousarray(host, dtype=host.dtype.newbyteorder("<"))
    digest = hashlib.sha256()
    shape = ",".join(str(dim) for dim in canon.shape)
    digest.update(b"%s\0%s\0%s\0" % (_COMMIT_DOMAIN, canon.dtype.name.encode(), shape.encode()))
    digest.update(canon.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def verify(
    a: Array,
    b: Array,
    c: Array,
    commitment: str,
    *,
    dtype: str | None = None,
    rounds: int = 2,
    rng: np.random.Generator | None = None,
    slack: float = DEFAULT_SLACK,
) -> FreivaldsResult:
    """Check that ``c`` is ``a @ b`` up to rounding in ``dtype`` (default: c's dtype).

    ``rng`` must be drawn from after the commitment was received; a fresh
    ``numpy.random.default_rng()`` is used when it is None.
    """
    if rounds < 2:
        raise ValueError(f"rounds must be at least 2, got {rounds}")
    if not slack > 0:
        raise ValueError(f"slack must be positive, got {slack}")
    c_host = _to_host(c)
    precision = c_host.dtype.name if dtype is None else dtype
    if precision not in UNIT_ROUNDOFF:
        raise ValueError(
            f"cannot verify a {precision} product; pass dtype= one of {', '.join(UNIT_ROUNDOFF)}"
        )
    if commit(c_host) != commitment:
        return _reject("result does not match its commitment")
    a_host, b_host = _to_host(a), _to_host(b)
    if a_host.ndim != 2 or b_host.ndim != 2 or a_host.shape[1] != b_host.shape[0]:
        raise ValueError(f"operands of shapes {a_host.shape} and {b_host.shape} do not multiply")
    expected = (a_host.shape[0], b_host.shape[1])
    if c_host.shape != expected:
        return _reject(f"result has shape {c_host.shape}, expected {expected}")
    if not _all_finite(c_host):
        return _reject("result contains non-finite values")

    k, m = a_host.shape[1], b_host.shape[1]
    generator = np.random.default_rng() if rng is None else rng
    # One column of r per round, so each matrix is read once for all rounds.
    r = generator.integers(0, 2, size=(m, rounds)).astype(np.float64) * 2.0 - 1.0
    br = _row_products(b_host, r)
    lhs = _row_products(a_host, br)
    rhs = _row_products(c_host, r)
    norm_a_rows = _row_norms(a_host)
    norm_b = float(np.sqrt(np.square(_row_norms(b_host)).sum()))
    norm_c_rows = _row_norms(c_host)

    eta = float(np.finfo(precision).smallest_subnormal)
    floor = slack * m * eta
    tol = (
        slack
        * (
            np.sqrt(k) * _ACCUMULATION_ROUNDOFF * norm_a_rows * norm_b
            + UNIT_ROUNDOFF[precision] * norm_c_rows
        )
        + floor
    )
    deviation = np.abs(lhs - rhs)
    max_abs_error = float(deviation.max(initial=0.0))
    tolerance = float(tol.max(initial=0.0))
    bad = deviation > tol[:, None]
    if bad.any():
        rows, cols = np.nonzero(bad)
        row, rnd = int(rows[0]), int(cols[0])
        return FreivaldsResult(
            ok=False,
            reason=(
                f"round {rnd + 1}: row {row} of C r is off by {deviation[row, rnd]:.3g}, "
                f"more than the {tol[row]:.3g} rounding allows"
            ),
            rounds=rounds,
            max_abs_error=max_abs_error,
            tolerance=tolerance,
        )
    return FreivaldsResult(
        ok=True, reason="", rounds=rounds, max_abs_error=max_abs_error, tolerance=tolerance
    )


def verify_seeded(
    seed: int,
    n: int,
    dtype: str,
    c: Array,
    commitment: str,
    *,
    rounds: int = 2,
    rng: np.random.Generator | None = None,
    slack: float = DEFAULT_SLACK,
) -> FreivaldsResult:
    """Regenerate A and B from ``seed`` on the host and :func:`verify` the claimed C."""
    c_host = _to_host(c)
    if c_host.dtype.name != dtype:
        return _reject(f"result dtype is {c_host.dtype.name}, expected {dtype}")
    a, b = make_operands(numpy_backend(), n, dtype, seed)
    return verify(a, b, c_host, commitment, dtype=dtype, rounds=rounds, rng=rng, slack=slack)


def _reject(reason: str) -> FreivaldsResult:
    return FreivaldsResult(ok=False, reason=reason, rounds=0, max_abs_error=0.0, tolerance=0.0)


def _to_host(x: Array) -> npt.NDArray[Any]:
    if isinstance(x, np.ndarray):
        return x
    # CuPy refuses implicit conversion to NumPy; its arrays copy to the host with .get().
    get = getattr(x, "get", None)
    return np.asarray(get() if callable(get) else x)


def _row_blocks(m: npt.NDArray[Any]) -> Iterator[tuple[slice, npt.NDArray[np.float64]]]:
    rows = max(1, _BLOCK_ELEMENTS // max(m.shape[1], 1))
    for start in range(0, m.shape[0], rows):
        span = slice(start, start + rows)
        yield span, m[span].astype(np.float64)


def _row_products(m: npt.NDArray[Any], v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``m @ v`` in float64, a block of rows at a time."""
    out = np.empty((m.shape[0], v.shape[1]), dtype=np.float64)
    for span, block in _row_blocks(m):
        out[span] = block @ v
    return out


def _row_norms(m: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    out = np.empty(m.shape[0], dtype=np.float64)
    for span, block in _row_blocks(m):
        out[span] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


def _all_finite(m: npt.NDArray[Any]) -> bool:
    if not np.issubdtype(m.dtype, np.inexact):
        return True
    return all(bool(np.isfinite(block).all()) for _, block in _row_blocks(m))
