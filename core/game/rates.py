"""Reward arithmetic, exact in integer base units: pay per verified FLOP.

The network pays for work it verified, by its size: the FLOPs of verified work units
(``2 m n k`` each), times the active multiplier. The rate is calibrated on the OmniTensor
documentation's example: an NVIDIA RTX 3080 shared for 24 hours at base rate earns 150 OMNIT.
A 3080 delivers about 20 TFLOPS of verified work on the default fp32 path (the reference
table's figure, ``assets/gpu_reference.toml``), so one verified FLOP pays
``150 OMNIT / (20e12 x 86,400)``: a card that really delivers twice the work earns twice,
and a claim of speed earns nothing by itself.
"""

from __future__ import annotations

from fractions import Fraction

from core.money import BASE_UNITS_PER_OMNIT

CALIBRATION_REWARD = 150 * BASE_UNITS_PER_OMNIT  # base units, for the calibration card-day
CALIBRATION_SECONDS = 24 * 3600
# Verified work rate of the calibration card (NVIDIA RTX 3080), in TFLOPS.
CALIBRATION_TFLOPS = Fraction(20)
MAX_MULTIPLIER = Fraction(3)
# Base units per verified FLOP (about 8.7e-8: a GFLOP earns 0.087 base units).
PAY_PER_FLOP = Fraction(CALIBRATION_REWARD) / (CALIBRATION_TFLOPS * 10**12 * CALIBRATION_SECONDS)


def _check_multiplier(multiplier: Fraction) -> None:
    if multiplier < 0 or multiplier > MAX_MULTIPLIER:
        raise ValueError(f"multiplier {multiplier} is outside 0..{MAX_MULTIPLIER}")


def pay_for_flops(flops: int, multiplier: Fraction = Fraction(1)) -> int:
    """Base units for ``flops`` of verified work at ``multiplier``, rounded down exactly."""
    _check_multiplier(multiplier)
    if flops < 0:
        raise ValueError("verified work cannot be negative")
    amount = PAY_PER_FLOP * flops * multiplier
    return amount.numerator // amount.denominator


def compute_reward(
    tflops: float | Fraction, seconds: float | Fraction, multiplier: Fraction = Fraction(1)
) -> int:
    """Base units for delivering ``tflops`` of verified work for ``seconds`` (estimates).

    The same rate as :func:`pay_for_flops`: ``tflops x 1e12 x seconds`` FLOPs.
    """
    _check_multiplier(multiplier)
    # Fraction(float) is exact, so the only rounding is the final floor.
    amount = PAY_PER_FLOP * Fraction(tflops) * 10**12 * Fraction(seconds) * multiplier
    return max(0, amount.numerator // amount.denominator)
