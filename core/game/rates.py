"""Reward arithmetic, exact in integer base units.

Rewards are proportional to the compute provided (verified GEMM throughput, in TFLOPS), to
the time it was shared, and to the active multiplier. The base rate is calibrated on the
OmniTensor documentation's example: an NVIDIA RTX 3080 shared for 24 hours at base rate earns
150 OMNIT. The RTX 3080's throughput in that calibration is the reference table's figure
(``assets/gpu_reference.toml``), so a card with twice the verified throughput earns twice.
"""

from __future__ import annotations

from fractions import Fraction

from core.money import BASE_UNITS_PER_OMNIT

CALIBRATION_REWARD = 150 * BASE_UNITS_PER_OMNIT  # base units, for the calibration card-day
CALIBRATION_SECONDS = 24 * 3600
# Verified fp32 GEMM throughput of the calibration card (NVIDIA RTX 3080), in TFLOPS.
CALIBRATION_TFLOPS = Fraction(20)
MAX_MULTIPLIER = Fraction(3)


def compute_reward(
    tflops: float | Fraction, seconds: float | Fraction, multiplier: Fraction = Fraction(1)
) -> int:
    """Base units earned for ``seconds`` of sharing at ``tflops``, rounded down exactly."""
    if multiplier < 0 or multiplier > MAX_MULTIPLIER:
        raise ValueError(f"multiplier {multiplier} is outside 0..{MAX_MULTIPLIER}")
    rate = Fraction(CALIBRATION_REWARD) / (CALIBRATION_TFLOPS * CALIBRATION_SECONDS)
    # Fraction(float) is exact, so the only rounding is the final floor.
    amount = rate * Fraction(tflops) * Fraction(seconds) * multiplier
    return max(0, amount.numerator // amount.denominator)
