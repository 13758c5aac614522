"""What skipping work earns: the chance of being caught and the expected pay (analytic, simulated).

Model (docs/work-units.md derives it). A node skips a fraction ``f`` of a unit's blocks
(commits garbage leaves for them) and so spends ``(1 - f) T`` of the honest time ``T``.
The coordinator checks a unit with probability ``q`` (1: every unit) by sampling ``s``
distinct blocks; the unit fails when any sampled block is a skipped one. A failed unit is
not paid (forfeit of its pay ``V``) and costs a slash ``S = sigma V``. Per unit::

    p   = q (1 - C(N - fN, s) / C(N, s))  >=  q (1 - (1 - f)^s)
    pay = (1 - p) V - p S
    pay per node-second / honest = ((1 - p) - p sigma) / (1 - f)

Skipping pays less than honest work iff ``p (1 + sigma) > f``. With q = 1 this holds for
every f in (0, 1] as soon as s >= 2 or sigma > 0, because 1 - (1 - f)^s is concave with
slope s at 0 and equals 1 at f = 1. With spot checks (q < 1) it needs sigma > 1/q - 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels.work_proof import challenge_indices
from kernels.work_spec import WorkSpec

__all__ = [
    "SkipOutcome",
    "catch_probability",
    "catch_probability_exact",
    "min_slash_ratio",
    "simulate_skipping",
    "skip_outcome",
]


@dataclass(frozen=True)
class SkipOutcome:
    """Expected result of skipping a fraction of each unit, in units of the honest pay."""

    skip_fraction: float
    samples: int
    p_caught: float
    pay_per_unit: float  # expected pay of one unit, honest = 1
    pay_rate_ratio: float  # expected pay per node-second spent / honest; -inf at f = 1, p > 0


def catch_probability(f: float, s: int) -> float:
    """1 - (1 - f)^s: the chance that s independent uniform samples hit a skipped block."""
    if not 0.0 <= f <= 1.0 or s < 0:
        raise ValueError("f must be in [0, 1] and s non-negative")
    return 1.0 - (1.0 - f) ** s


def catch_probability_exact(bad: int, n: int, s: int) -> float:
    """The same for s distinct samples among n blocks of which ``bad`` are skipped."""
    if not 0 <= bad <= n or not 0 <= s <= n:
        raise ValueError("need 0 <= bad <= n and 0 <= s <= n")
    miss = 1.0
    for i in range(s):
        miss *= (n - bad - i) / (n - i)
    return 1.0 - max(miss, 0.0)


def _outcome(f: float, s: int, p: float, sigma: float) -> SkipOutcome:
    pay = (1.0 - p) - p * sigma
    # Skipping everything takes no node time: the rate is the sign of the pay, unbounded.
    rate = pay / (1.0 - f) if f < 1.0 else math.copysign(math.inf, pay) if pay else 0.0
    return SkipOutcome(
        skip_fraction=f, samples=s, p_caught=p, pay_per_unit=pay, pay_rate_ratio=rate
    )


def skip_outcome(
    f: float,
    s: int,
    slash_ratio: float,
    *,
    check_probability: float = 1.0,
    n_leaves: int | None = None,
) -> SkipOutcome:
    """Analytic outcome of skipping ``f``; exact (distinct samples) when ``n_leaves`` is given."""
    if slash_ratio < 0 or not 0.0 <= check_probability <= 1.0:
        raise ValueError("slash_ratio must be >= 0 and check_probability in [0, 1]")
    if n_leaves is None:
        hit = catch_probability(f, s)
    else:
        hit = catch_probability_exact(round(f * n_leaves), n_leaves, min(s, n_leaves))
    return _outcome(f, s, check_probability * hit, slash_ratio)


def min_slash_ratio(check_probability: float) -> float:
    """Smallest slash / pay ratio that makes every skip fraction unprofitable (s >= 2).

    f / (1 - (1 - f)^s) grows with f up to 1 at f = 1, so the binding case is skipping
    everything: q (1 + sigma) > 1.
    """
    if not 0.0 < check_probability <= 1.0:
        raise ValueError("check_probability must be in (0, 1]")
    return 1.0 / check_probability - 1.0


def simulate_skipping(
    f: float,
    s: int,
    slash_ratio: float,
    *,
    units: int,
    rng: np.random.Generator,
    spec: WorkSpec,
    check_probability: float = 1.0,
) -> SkipOutcome:
    """Monte Carlo of ``units`` units through the real challenge sampler.

    Each unit gets a fresh root (random bytes stand in for a commitment) and a fresh random
    set of ``round(f N)`` skipped blocks; the coordinator's secret comes from ``rng`` too,
    so a seeded run is reproducible.
    """
    n = spec.n_leaves
    bad_count = round(f * n)
    secret = rng.bytes(32)
    caught = 0
    for _ in range(units):
        if rng.random() >= check_probability:
            continue
        skipped = np.zeros(n, dtype=bool)
        skipped[rng.choice(n, size=bad_count, replace=False)] = True
        root = rng.bytes(32)
        if any(skipped[i] for i in challenge_indices(secret, spec, root, s)):
            caught += 1
    return _outcome(f, s, caught / units, slash_ratio)
