"""The GPU reference table, lookups, and the documented reward estimate."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from core.errors import ConfigError, OmniError
from core.game import (
    UnknownGpuType,
    estimate_share_reward,
    format_estimate,
    gpu_key,
    liveness_reward,
    load_gpu_reference,
    lookup_gpu,
    work_reward,
)
from core.game.rates import CALIBRATION_TFLOPS
from core.game.rules_file import default_rules
from core.money import parse_omnit


def test_table_is_large_sourced_and_consistent() -> None:
    table = load_gpu_reference()
    assert len(table) >= 25
    names = {g.name for g in table.types}
    for wanted in (
        "NVIDIA GeForce RTX 2080 Ti",
        "NVIDIA GeForce RTX 3080",
        "NVIDIA GeForce RTX 4090",
        "NVIDIA GeForce RTX 5090",
        "NVIDIA A100 SXM4",
        "NVIDIA H100 SXM5",
        "NVIDIA L4",
        "NVIDIA Tesla T4",
        "NVIDIA Tesla V100 SXM2",
        "AMD Instinct MI250",
    ):
        assert wanted in names
    for gpu in table.types:
        assert gpu.source.strip()
        assert 0 < gpu.sgemm_efficiency <= 1
        assert abs(gpu.gemm_tflops - gpu.peak_fp32_tflops * gpu.sgemm_efficiency) <= Fraction(1, 20)
    # The estimates only: the file says measured values are preferred.
    text = table.source.read_text()
    assert "MEASURED" in text and "ESTIMATES only" in text


def test_rtx_3080_is_the_calibration_card() -> None:
    assert lookup_gpu("RTX 3080").gemm_tflops == CALIBRATION_TFLOPS


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA GeForce RTX 3080",
        "RTX 3080",
        "nvidia rtx 3080",
        "NVIDIA RTX 3080",
        "rtx3080",
        "GeForce RTX 3080 10GB",
    ],
)
def test_lookup_tolerates_vendor_prefixes_and_case(name: str) -> None:
    assert lookup_gpu(name).name == "NVIDIA GeForce RTX 3080"


@pytest.mark.parametrize(
    ("nvml_name", "expected"),
    [
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 SXM4"),
        ("NVIDIA A100 80GB PCIe", "NVIDIA A100 PCIe"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5"),
        ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe"),
        ("Tesla V100-SXM2-16GB", "NVIDIA Tesla V100 SXM2"),
        ("Tesla T4", "NVIDIA Tesla T4"),
        ("AMD Instinct MI250X", "AMD Instinct MI250X"),
        ("NVIDIA GeForce RTX 4070 Ti SUPER", "NVIDIA GeForce RTX 4070 Ti Super"),
    ],
)
def test_lookup_driver_names(nvml_name: str, expected: str) -> None:
    assert lookup_gpu(nvml_name).name == expected


def test_variants_stay_distinct() -> None:
    assert lookup_gpu("RTX 3080 Ti").name == "NVIDIA GeForce RTX 3080 Ti"
    assert lookup_gpu("A10").name == "NVIDIA A10"
    assert gpu_key("NVIDIA A100-SXM4-80GB") == "a100sxm4"


def test_unknown_gpu_lists_close_matches() -> None:
    with pytest.raises(UnknownGpuType) as info:
        lookup_gpu("NVIDIA RTX 3081")
    err = info.value
    assert isinstance(err, OmniError) and isinstance(err, LookupError)
    assert "NVIDIA GeForce RTX 3080" in err.matches
    assert str(err).startswith("unknown GPU type 'NVIDIA RTX 3081'; close matches: ")
    assert "NVIDIA GeForce RTX 3080" in str(err)


def test_unknown_gpu_without_close_match() -> None:
    with pytest.raises(UnknownGpuType, match="no close match among the"):
        lookup_gpu("potato")


def test_documented_estimate_is_exactly_150_omnit() -> None:
    amount = estimate_share_reward("NVIDIA RTX 3080", hours=24)
    assert amount == parse_omnit(150) == 150 * 10**9
    assert format_estimate(amount) == "Reward: 150 OMNIT Tokens"
    assert estimate_share_reward("rtx 3080", hours="24", multiplier=Fraction(3, 2)) == parse_omnit(
        225
    )
    assert estimate_share_reward("RTX 3080", hours=12) == parse_omnit(75)
    # Twice the throughput, twice the reward; whole OMNIT shown, rounded down.
    assert format_estimate(parse_omnit("150.999")) == "Reward: 150 OMNIT Tokens"
    with pytest.raises(UnknownGpuType):
        estimate_share_reward("RTX 9999", hours=24)
    with pytest.raises(ValueError, match="negative"):
        estimate_share_reward("RTX 3080", hours=-1)


def test_work_and_liveness_rewards_are_exact() -> None:
    assert work_reward(20, 86_400) == parse_omnit(150)
    assert work_reward(Fraction(20), Fraction(86_400), Fraction(3)) == parse_omnit(450)
    assert work_reward(40, 3600) == parse_omnit("12.5")
    rules = default_rules()
    assert liveness_reward(86_400, rules) == rules.liveness_per_day == parse_omnit(1)
    assert liveness_reward(0) == 0
    # Paid on cumulative time, intervals add up to the whole without rounding loss.
    total, paid = 0, 0
    for _ in range(8640):
        before = liveness_reward(total)
        total += 10
        paid += liveness_reward(total) - before
    assert paid == liveness_reward(86_400)
    with pytest.raises(ValueError):
        liveness_reward(-1)


def test_bad_reference_table(tmp_path: Path) -> None:
    path = tmp_path / "gpus.toml"
    path.write_text(
        '[[gpu]]\nname = "X 1"\nvendor = "V"\narchitecture = "A"\npeak_fp32_tflops = "10"\n'
        'sgemm_efficiency = "0.5"\ngemm_tflops = "7"\nsource = "s"\n'
    )
    with pytest.raises(ConfigError, match=r"gpu\[0\] \(X 1\)\.gemm_tflops: 7 is not peak x"):
        load_gpu_reference(path)
    path.write_text('[[gpu]]\nname = "X 1"\n')
    with pytest.raises(ConfigError, match=r"gpu\[0\]\.vendor: missing"):
        load_gpu_reference(path)
