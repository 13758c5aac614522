"""Skipping work: caught at the predicted rate (end to end and by simulation), and never paying."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from kernels.backend import numpy_backend
from kernels.work_economics import (
    catch_probability,
    catch_probability_exact,
    min_slash_ratio,
    simulate_skipping,
    skip_outcome,
)
from kernels.work_spec import WorkSpec
from kernels.work_unit import answer, challenge_indices, compute_unit, encode_proof, verify
from kernels.work_unit import unit_from_leaf_digests as commit_digests

F_TABLE = (0.01, 0.05, 0.1, 0.25, 0.5, 0.9, 1.0)
# Tolerance for a simulated rate: 4.5 binomial standard errors (two-sided miss chance < 1e-5
# for a correct sampler; the runs are seeded, so a pass or a failure is reproducible).
SIGMAS = 4.5


def _tolerance(p: float, trials: int) -> float:
    return SIGMAS * math.sqrt(max(p * (1 - p), 1e-4) / trials)


def test_a_skipping_prover_is_caught_at_the_predicted_rate_end_to_end() -> None:
    """A real prover commits garbage for a quarter of its blocks; real proofs, real verifier."""
    spec = WorkSpec(seed=hashlib.sha256(b"skip").digest(), m=256, n=256, k=64, block=8)
    honest = compute_unit(numpy_backend(), spec).levels[0]
    rng = np.random.default_rng(7)
    f, samples, trials = 0.25, 4, 600
    bad = round(f * spec.n_leaves)
    caught = 0
    for _ in range(trials):
        digests = honest.copy()
        skipped = rng.choice(spec.n_leaves, size=bad, replace=False)
        digests[skipped] = rng.integers(0, 2**32, size=(bad, 8), dtype=np.uint32)
        unit = commit_digests(spec, digests)
        secret = rng.bytes(32)
        indices = challenge_indices(secret, spec, unit.root, samples)
        verdict = verify(spec, unit.root, indices, encode_proof(answer(unit, indices)))
        assert verdict.ok == (not set(indices) & set(skipped.tolist()))
        caught += not verdict.ok
    expected = catch_probability_exact(bad, spec.n_leaves, samples)
    assert expected == pytest.approx(0.684, abs=0.001)
    assert abs(caught / trials - expected) <= _tolerance(expected, trials)


@pytest.mark.parametrize("f", [0.01, 0.1, 0.5])
def test_the_challenge_sampler_catches_at_the_exact_rate(f: float) -> None:
    spec = WorkSpec(seed=bytes(32), m=1024, n=1024, k=64, block=8)
    trials = 6000
    sim = simulate_skipping(f, 32, 1.0, units=trials, rng=np.random.default_rng(11), spec=spec)
    exact = skip_outcome(f, 32, 1.0, n_leaves=spec.n_leaves)
    assert abs(sim.p_caught - exact.p_caught) <= _tolerance(exact.p_caught, trials)
    # Distinct samples catch at least as often as the with-replacement bound says.
    assert exact.p_caught >= catch_probability(f, 32) - 1e-12


@pytest.mark.parametrize("samples", [2, 8, 32])
@pytest.mark.parametrize("sigma", [0.0, 1.0])
def test_skipping_any_fraction_pays_less_than_honest_work(samples: int, sigma: float) -> None:
    for f in (*F_TABLE, *np.linspace(0.001, 0.999, 200)):
        outcome = skip_outcome(float(f), samples, sigma)
        assert outcome.pay_rate_ratio < 1.0, (f, outcome)


def test_one_sample_without_slashing_is_only_break_even() -> None:
    # The boundary case the design avoids: s = 1 and no slash make skipping cost nothing.
    assert skip_outcome(0.3, 1, 0.0).pay_rate_ratio == pytest.approx(1.0)
    assert skip_outcome(0.3, 1, 0.5).pay_rate_ratio < 1.0


def test_spot_checks_need_a_larger_slash() -> None:
    # Checked 1 unit in 10 with a slash of one unit's pay: skipping everything is profitable.
    assert skip_outcome(1.0, 32, 1.0, check_probability=0.1).pay_per_unit > 0
    assert min_slash_ratio(0.1) == pytest.approx(9.0)
    assert skip_outcome(1.0, 32, 9.5, check_probability=0.1).pay_per_unit < 0
    assert min_slash_ratio(1.0) == 0.0


def test_simulated_pay_matches_the_analytic_table() -> None:
    spec = WorkSpec(seed=bytes(32), m=512, n=512, k=64, block=8)
    rng = np.random.default_rng(5)
    trials = 3000
    for f in (0.05, 0.25):
        sim = simulate_skipping(f, 8, 1.0, units=trials, rng=rng, spec=spec)
        exact = skip_outcome(f, 8, 1.0, n_leaves=spec.n_leaves)
        # pay = 1 - p (1 + sigma): its error is (1 + sigma) times that of p.
        assert abs(sim.pay_per_unit - exact.pay_per_unit) <= 2 * _tolerance(exact.p_caught, trials)
        assert sim.pay_rate_ratio < 1.0
