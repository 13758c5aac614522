"""Check a claimed GEMM result C = A @ B in O(n^2) with Freivalds' algorithm.

Protocol: the worker computes C, publishes ``commit(C)`` (a SHA-256 over a canonical
encoding), and only then does the verifier draw random vectors r in {-1, +1}^n. Drawing
after the commitment matters: a worker that knew r could forge a C with C r = A B r.

Each round compares ``A (B r)`` with ``C r`` in float64 on the host. An honest C is not
exactly A B: it carries the rounding error of the precision the worker computed in, with
unit roundoff u (float32: 2**-24, float16: 2**-11). For an inner dimension k the standard
bound is |C - A B| <= (k + 1) u |A| |B| elementwise (k roundings in each dot product, one
more when the entry is stored), so row i of the check may deviate by at most::

    tol_i = slack * (k + 1) * u * (|A| (|B| |r|))_i  +  slack * (k + 1) * m * eta

where m is the number of columns of C, ``slack`` (default 4) covers the verifier's own
float64 rounding and keeps honest results clear of the edge, and eta (the dtype's smallest
subnormal) is an absolute floor for underflow. A row deviating by more than tol_i fails.

What this catches and what it cannot:

* A deviation within the rounding bound is indistinguishable from rounding and passes.
  The bound is a worst case summed over a whole row, so it is loose: for float32 with
  entries in [-1, 1) it grows like n**3 * u while entries grow like sqrt(n) (about 8 for a
  single entry at n = 512, about 500 at n = 2048), and for float16 it exceeds the size of
  the entries themselves. Forgeries of that size pass; use float32 for checks that matter.
* An entry wrong by more than tol_i is caught in every round: with r_j = +-1 the wrong
  entry shows up at full size in row i of C r, so a single wrong entry is always caught.
* Errors spread over many entries can cancel in C r for a particular r. For any C with an
  entry off by more than tol_i, flipping the sign of that entry's r_j changes row i by
  more than 2 tol_i, so at most half of all r miss it: one round misses with probability
  <= 1/2 and k independent rounds with probability <= 2**-k. At least 2 rounds are run.
* Non-finite entries, a wrong shape or a result that does not match its commitment fail
  before any arithmetic.
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
    slack: float = 4.0,
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
    # |r| is all ones, so the rounding scale |A| (|B| |r|) is the same in every round.
    br, abs_b = _row_products(b_host, r, np.ones(m))
    lhs, abs_ab = _row_products(a_host, br, abs_b)
    rhs, _ = _row_products(c_host, r)

    eta = float(np.finfo(precision).smallest_subnormal)
    floor = slack * (k + 1) * m * eta
    tol = slack * (k + 1) * UNIT_ROUNDOFF[precision] * abs_ab + floor
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
    slack: float = 4.0,
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


def _row_products(
    m: npt.NDArray[Any], v: npt.NDArray[np.float64], abs_v: npt.NDArray[np.float64] | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return ``m @ v`` and ``|m| @ abs_v`` (zeros when abs_v is None), in float64."""
    out = np.empty((m.shape[0], v.shape[1]), dtype=np.float64)
    abs_out = np.zeros(m.shape[0], dtype=np.float64)
    for span, block in _row_blocks(m):
        out[span] = block @ v
        if abs_v is not None:
            np.abs(block, out=block)
            abs_out[span] = block @ abs_v
    return out, abs_out


def _all_finite(m: npt.NDArray[Any]) -> bool:
    if not np.issubdtype(m.dtype, np.inexact):
        return True
    return all(bool(np.isfinite(block).all()) for _, block in _row_blocks(m))
