"""ThermalGuard hysteresis, power trigger, missing data, and config validation."""

from __future__ import annotations

import pytest

from core.node.frames import GpuSnapshot, TelemetryFrame, TelemetryStatus
from core.node.guard import GuardConfig, GuardState, ThermalGuard


def snap(
    index: int = 0,
    temp: int | None = None,
    power: float | None = None,
    limit: float | None = 320.0,
    error: str | None = None,
) -> GpuSnapshot:
    return GpuSnapshot(
        index=index,
        name="NVIDIA GeForce RTX 3080",
        uuid=f"GPU-{index}",
        utilization_pct=None,
        memory_utilization_pct=None,
        memory_used_bytes=None,
        memory_total_bytes=None,
        temperature_c=temp,
        power_w=power,
        power_limit_w=limit,
        clock_sm_mhz=None,
        clock_mem_mhz=None,
        fan_pct=None,
        processes=(),
        error=error,
    )


def frame(*gpus: GpuSnapshot, available: bool = True, reason: str = "ok") -> TelemetryFrame:
    status = TelemetryStatus(available, reason, "550.54.15", len(gpus))
    return TelemetryFrame(0.0, status, gpus, 0.001)


def run(guard: ThermalGuard, temps: list[int | None], power: float | None = 100.0) -> GuardState:
    state = GuardState(False, ())
    for t in temps:
        state = guard.update(frame(snap(temp=t, power=power)))
    return state


def test_temperature_hysteresis() -> None:
    guard = ThermalGuard()
    assert not run(guard, [70]).paused

    hot = run(guard, [86])
    assert hot.paused
    assert hot.per_gpu[0].reason == "paused: 86°C > 85°C"
    assert [c.message for c in hot.changes] == ["GPU 0 paused: 86°C > 85°C"]
    assert guard.is_paused(0)

    for t in (82, 80):  # inside the band: stays paused, no new transition
        band = run(guard, [t])
        assert band.paused and band.per_gpu[0].paused
        assert band.changes == ()
        assert band.per_gpu[0].reason == f"paused: {t}°C, resumes below 80°C"

    cool = run(guard, [79])
    assert not cool.paused
    assert cool.per_gpu[0].reason == "running"
    assert [(c.index, c.paused, c.message) for c in cool.changes] == [
        (0, False, "GPU 0 resumed at 79°C")
    ]
    assert run(guard, [84]).changes == ()  # below pause: still running


def test_exactly_at_threshold_does_not_pause() -> None:
    assert not run(ThermalGuard(), [85]).paused


def test_power_trigger_and_resume() -> None:
    guard = ThermalGuard()
    over = guard.update(frame(snap(temp=60, power=315.0, limit=320.0)))
    assert over.paused
    assert over.per_gpu[0].reason == "paused: 315 W > 313 W (98% of 320 W)"
    assert over.changes[0].message == "GPU 0 paused: 315 W > 313 W (98% of 320 W)"

    band = guard.update(frame(snap(temp=60, power=300.0, limit=320.0)))  # < 313.6, >= 288
    assert band.paused and band.changes == ()
    assert band.per_gpu[0].reason == "paused: 300 W, resumes below 288 W"

    done = guard.update(frame(snap(temp=60, power=280.0, limit=320.0)))
    assert not done.paused
    assert done.changes[0].message == "GPU 0 resumed at 60°C, 280 W"


def test_power_reason_never_shows_equal_numbers() -> None:
    guard = ThermalGuard(GuardConfig(pause_power_fraction=0.9, resume_power_fraction=0.8))
    state = guard.update(frame(snap(power=288.2, limit=320.1)))  # threshold 288.09
    assert state.paused
    assert state.per_gpu[0].reason == "paused: 288.2 W > 288.1 W (90% of 320.1 W)"


def test_resume_needs_both_temperature_and_power_low() -> None:
    guard = ThermalGuard()
    guard.update(frame(snap(temp=90, power=100.0)))
    still = guard.update(frame(snap(temp=75, power=300.0)))  # cool but 94% of the limit
    assert still.paused
    assert still.per_gpu[0].reason == "paused: 300 W, resumes below 288 W"
    assert not guard.update(frame(snap(temp=75, power=250.0))).paused


def test_both_triggers_are_reported() -> None:
    state = ThermalGuard().update(frame(snap(temp=90, power=319.0)))
    assert state.per_gpu[0].reason == "paused: 90°C > 85°C; 319 W > 313 W (98% of 320 W)"


@pytest.mark.parametrize(
    "gpu",
    [
        snap(temp=None, power=None, limit=None),
        snap(temp=None, power=1000.0, limit=None),  # no limit: power cannot be judged
        snap(temp=None, power=None, limit=320.0),
        snap(temp=60, power=1000.0, limit=0.0),  # a zero limit means "unknown"
    ],
)
def test_missing_fields_never_pause(gpu: GpuSnapshot) -> None:
    state = ThermalGuard().update(frame(gpu))
    assert not state.paused
    assert state.per_gpu[0].reason == "running"


def test_power_check_can_be_disabled() -> None:
    guard = ThermalGuard(GuardConfig(pause_power_fraction=None, resume_power_fraction=None))
    assert not guard.update(frame(snap(temp=60, power=400.0, limit=320.0))).paused


def test_gpus_are_guarded_independently() -> None:
    guard = ThermalGuard()
    state = guard.update(frame(snap(0, temp=88, power=100.0), snap(1, temp=60, power=100.0)))
    assert state.paused  # node-wide: any GPU paused
    assert [g.paused for g in state.per_gpu] == [True, False]
    assert state.per_gpu[1].reason == "running"
    assert [c.index for c in state.changes] == [0]
    assert state.summary() == "guard: 1 of 2 GPUs paused (GPU 0 88°C > 85°C)"

    calm = guard.update(frame(snap(0, temp=70), snap(1, temp=60)))
    assert calm.summary() == "guard: all 2 GPUs running"
    assert GuardState(False, ()).summary() == "guard: no GPU"


def test_failed_reading_holds_a_paused_gpu() -> None:
    guard = ThermalGuard()
    guard.update(frame(snap(temp=90)))

    errored = guard.update(frame(snap(error="GPU is lost", limit=None)))
    assert errored.paused and errored.changes == ()
    assert errored.per_gpu[0].reason == "paused: no reading (GPU is lost)"

    outage = guard.update(frame(available=False, reason="NVML error: Driver Not Loaded"))
    assert outage.paused and outage.changes == ()
    assert outage.per_gpu[0].reason == "paused: no reading (NVML error: Driver Not Loaded)"

    unreadable = guard.update(frame(snap(temp=None)))  # the trigger metric vanished
    assert unreadable.paused
    assert unreadable.per_gpu[0].reason == "paused: no temperature reading"

    assert not guard.update(frame(snap(temp=70))).paused


def test_failed_reading_does_not_pause_a_running_gpu() -> None:
    state = ThermalGuard().update(frame(snap(error="Unknown Error")))
    assert not state.paused
    assert state.per_gpu[0].reason == "running"


def test_vanished_gpu_is_forgotten() -> None:
    guard = ThermalGuard()
    guard.update(frame(snap(0, temp=60), snap(1, temp=95)))
    state = guard.update(frame(snap(0, temp=60)))
    assert not state.paused and len(state.per_gpu) == 1
    assert not guard.is_paused(1)


def test_default_config_is_valid() -> None:
    GuardConfig().validate()
    GuardConfig(pause_temp_c=90.5, resume_temp_c=84.5).validate()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (GuardConfig(pause_temp_c=80.0, resume_temp_c=80.0), "resume_temp_c"),
        (GuardConfig(pause_temp_c=80.0, resume_temp_c=82.0), "resume_temp_c"),
        (GuardConfig(pause_temp_c=200.0), "pause_temp_c"),
        (GuardConfig(pause_temp_c=float("nan")), "pause_temp_c"),
        (GuardConfig(resume_temp_c=-5.0), "resume_temp_c"),
        (GuardConfig(pause_power_fraction=0.9, resume_power_fraction=0.9), "resume_power_fraction"),
        (GuardConfig(pause_power_fraction=0.0), "pause_power_fraction"),
        (GuardConfig(pause_power_fraction=3.0), "pause_power_fraction"),
        (GuardConfig(resume_power_fraction=0.0), "resume_power_fraction"),
        (GuardConfig(pause_power_fraction=None), "resume_power_fraction"),
        (GuardConfig(resume_power_fraction=None), "resume_power_fraction"),
    ],
)
def test_config_validation_names_the_field(config: GuardConfig, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        config.validate()
    with pytest.raises(ValueError, match=field):
        ThermalGuard(config)
