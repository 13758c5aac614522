"""Reward amounts: work (delegating to the calibrated formula), liveness and estimates."""

from __future__ import annotations

from fractions import Fraction

from core.game.amounts import Exact, exact, floor_int
from core.game.gpus import GpuTable, GpuType, lookup_gpu
from core.game.rates import compute_reward
from core.game.rules import GameRules
from core.game.rules_file import default_rules
from core.money import format_omnit

SECONDS_PER_DAY = 86_400


def work_reward(
    tflops: float | Fraction, seconds: float | Fraction, multiplier: Fraction = Fraction(1)
) -> int:
    """Base units for verified work at ``tflops`` for ``seconds``, times ``multiplier``.

    The calibrated formula of :mod:`core.rewards` (an RTX 3080 at 20 TFLOPS for 24 h at 1x
    earns 150 OMNIT), rounded down to a base unit.
    """
    return compute_reward(tflops, seconds, multiplier)


def liveness_reward(seconds_online: float | Fraction | int, rules: GameRules | None = None) -> int:
    """Base units of the liveness base reward for ``seconds_online``, rounded down.

    Pay it on cumulative online time: ``liveness_reward(total) - liveness_reward(before)``
    credits each interval without losing a fraction of a base unit every time.
    """
    rules = default_rules() if rules is None else rules
    seconds = exact(seconds_online)
    if seconds < 0:
        raise ValueError("online time cannot be negative")
    return floor_int(rules.liveness_per_day * seconds / SECONDS_PER_DAY)


def estimate_share_reward(
    gpu_type: str | GpuType,
    hours: Exact,
    multiplier: Exact = 1,
    table: GpuTable | None = None,
) -> int:
    """Projected base units for sharing a card of ``gpu_type`` for ``hours``.

    Uses the reference table's estimated GEMM throughput (the network pays the measured one);
    the liveness base reward is not included, as in the documented example.
    """
    gpu = gpu_type if isinstance(gpu_type, GpuType) else lookup_gpu(gpu_type, table)
    span = exact(hours)
    if span < 0:
        raise ValueError("hours cannot be negative")
    return work_reward(gpu.gemm_tflops, span * 3600, exact(multiplier))


def format_estimate(amount: int) -> str:
    """The documented projection line: ``Reward: 150 OMNIT Tokens`` (whole OMNIT)."""
    return f"Reward: {format_omnit(amount)} OMNIT Tokens"
