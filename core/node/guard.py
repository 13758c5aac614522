"""Thermal and power guard: pause work on a GPU that runs too hot or too close to its limit.

Work is paused per GPU: a hot card stops taking jobs while the others keep going. The
node-wide ``GuardState.paused`` (any GPU paused) is for the CPU fallback path, which cannot
tell which card a job would heat.

Hysteresis: a GPU pauses when its temperature exceeds ``pause_temp_c`` or its power draw
exceeds ``pause_power_fraction`` of its enforced limit, and resumes only once the temperature
is below ``resume_temp_c`` AND the power below ``resume_power_fraction`` of the limit, so a
card hovering at the threshold does not flap.

Missing data never pauses a GPU, but it never resumes a paused one blind either: a paused GPU
whose tick failed (snapshot ``error``, or NVML unavailable) stays paused, and a metric that
caused the pause must be readable and low again before the GPU resumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.node.frames import GpuSnapshot, TelemetryFrame

_TEMP = "temperature"
_POWER = "power"


@dataclass(frozen=True)
class GuardConfig:
    """Pause/resume thresholds; power fractions are of the enforced power limit."""

    pause_temp_c: float = 85.0
    resume_temp_c: float = 80.0
    pause_power_fraction: float | None = 0.98
    resume_power_fraction: float | None = 0.90

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        _check_range("pause_temp_c", self.pause_temp_c, 40.0, 110.0, "°C")
        _check_range("resume_temp_c", self.resume_temp_c, 20.0, 110.0, "°C")
        if self.resume_temp_c >= self.pause_temp_c:
            raise ValueError(
                f"resume_temp_c ({self.resume_temp_c:g}) must be below "
                f"pause_temp_c ({self.pause_temp_c:g})"
            )
        pause, resume = self.pause_power_fraction, self.resume_power_fraction
        if pause is None and resume is None:
            return
        if pause is None:
            raise ValueError("resume_power_fraction must be None when pause_power_fraction is")
        if resume is None:
            raise ValueError("resume_power_fraction must be set when pause_power_fraction is")
        # Above 1.2 the guard could never trigger: boards clamp draw near the enforced limit.
        _check_range("pause_power_fraction", pause, 0.1, 1.2, "")
        _check_range("resume_power_fraction", resume, 0.05, 1.2, "")
        if resume >= pause:
            raise ValueError(
                f"resume_power_fraction ({resume:g}) must be below pause_power_fraction ({pause:g})"
            )


def _check_range(name: str, value: float, low: float, high: float, unit: str) -> None:
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g}{unit} and {high:g}{unit}, got {value}")


@dataclass(frozen=True, slots=True)
class GpuGuard:
    """One GPU's guard state; ``reason`` is ``"running"`` or ``"paused: ..."``."""

    index: int
    paused: bool
    reason: str


@dataclass(frozen=True, slots=True)
class GuardTransition:
    """A GPU that changed state this update, with the line to log."""

    index: int
    paused: bool
    message: str


@dataclass(frozen=True, slots=True)
class GuardState:
    """The guard after one frame; ``changes`` lists GPUs that paused or resumed in it."""

    paused: bool
    per_gpu: tuple[GpuGuard, ...]
    changes: tuple[GuardTransition, ...] = ()

    def summary(self) -> str:
        """One line for status output."""
        n = len(self.per_gpu)
        if n == 0:
            return "guard: no GPU"
        held = [g for g in self.per_gpu if g.paused]
        if not held:
            return f"guard: all {n} GPU{'s' if n > 1 else ''} running"
        details = "; ".join(f"GPU {g.index} {g.reason.removeprefix('paused: ')}" for g in held)
        return f"guard: {len(held)} of {n} GPU{'s' if n > 1 else ''} paused ({details})"


def _num(value: float) -> str:
    """85 -> "85", 84.5 -> "84.5": thresholds from config may be fractional."""
    rounded = round(value, 1)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:.1f}"


def _watts_over(power: float, threshold: float) -> str:
    # Threshold rounded down so the shown limit is one the card really crossed; decimals
    # only when whole watts would read "313 W > 313 W".
    shown_power, shown_limit = round(power), math.floor(threshold)
    if shown_power <= shown_limit:
        return f"{power:.1f} W > {threshold:.1f} W"
    return f"{shown_power} W > {shown_limit} W"


@dataclass(slots=True)
class _Track:
    paused: bool = False
    # Metrics that crossed a pause threshold during the current pause.
    triggers: frozenset[str] = frozenset()


class ThermalGuard:
    """Per-GPU pause/resume decisions with hysteresis, fed one TelemetryFrame at a time."""

    def __init__(self, config: GuardConfig | None = None) -> None:
        self._config = GuardConfig() if config is None else config
        self._config.validate()
        self._tracks: dict[int, _Track] = {}
        self._state = GuardState(False, ())

    @property
    def config(self) -> GuardConfig:
        """The validated thresholds."""
        return self._config

    @property
    def state(self) -> GuardState:
        """The state after the last ``update``."""
        return self._state

    def is_paused(self, index: int) -> bool:
        """Whether GPU ``index`` is paused (False for a GPU never seen)."""
        track = self._tracks.get(index)
        return track is not None and track.paused

    def update(self, frame: TelemetryFrame) -> GuardState:
        """Apply one frame; the new state, with the GPUs that changed state in ``changes``."""
        per_gpu: list[GpuGuard] = []
        changes: list[GuardTransition] = []
        if not frame.status.available and not frame.gpus:
            # NVML outage: hold every known GPU as it was rather than resume it blind.
            for index in sorted(self._tracks):
                per_gpu.append(self._hold(index, frame.status.reason))
        else:
            seen = {snap.index for snap in frame.gpus}
            for index in [i for i in self._tracks if i not in seen]:
                del self._tracks[index]  # the card is gone (count changed)
            for snap in frame.gpus:
                per_gpu.append(self._update_gpu(snap, changes))
        self._state = GuardState(
            paused=any(g.paused for g in per_gpu), per_gpu=tuple(per_gpu), changes=tuple(changes)
        )
        return self._state

    def _hold(self, index: int, why: str) -> GpuGuard:
        track = self._tracks.setdefault(index, _Track())
        if track.paused:
            return GpuGuard(index, True, f"paused: no reading ({why})")
        return GpuGuard(index, False, "running")

    def _power_threshold(self, snap: GpuSnapshot, fraction: float | None) -> float | None:
        """``fraction`` of the limit, or None when power cannot be judged for this GPU."""
        if fraction is None or snap.power_w is None or not snap.power_limit_w:
            return None
        return fraction * snap.power_limit_w

    def _update_gpu(self, snap: GpuSnapshot, changes: list[GuardTransition]) -> GpuGuard:
        if snap.error is not None:
            return self._hold(snap.index, snap.error)
        cfg = self._config
        track = self._tracks.setdefault(snap.index, _Track())
        temp, power = snap.temperature_c, snap.power_w

        over: list[str] = []
        triggers: set[str] = set()
        if temp is not None and temp > cfg.pause_temp_c:
            triggers.add(_TEMP)
            over.append(f"{_num(temp)}°C > {_num(cfg.pause_temp_c)}°C")
        pause_power = self._power_threshold(snap, cfg.pause_power_fraction)
        if power is not None and pause_power is not None and power > pause_power:
            assert cfg.pause_power_fraction is not None and snap.power_limit_w is not None
            triggers.add(_POWER)
            over.append(
                f"{_watts_over(power, pause_power)} ({_num(cfg.pause_power_fraction * 100)}% "
                f"of {_num(snap.power_limit_w)} W)"
            )

        if over:
            track.triggers = track.triggers | triggers
            reason = "paused: " + "; ".join(over)
            if not track.paused:
                track.paused = True
                changes.append(GuardTransition(snap.index, True, f"GPU {snap.index} {reason}"))
            return GpuGuard(snap.index, True, reason)
        if not track.paused:
            return GpuGuard(snap.index, False, "running")

        # Paused and under the pause thresholds: resume only below the resume thresholds.
        waiting: list[str] = []
        if temp is None:
            if _TEMP in track.triggers:
                waiting.append("no temperature reading")
        elif temp >= cfg.resume_temp_c:
            waiting.append(f"{_num(temp)}°C, resumes below {_num(cfg.resume_temp_c)}°C")
        resume_power = self._power_threshold(snap, cfg.resume_power_fraction)
        if power is None or resume_power is None:
            if _POWER in track.triggers:
                waiting.append("no power reading")
        elif power >= resume_power:
            waiting.append(f"{round(power)} W, resumes below {math.floor(resume_power)} W")
        if waiting:
            return GpuGuard(snap.index, True, "paused: " + "; ".join(waiting))

        at = []
        if temp is not None:
            at.append(f"{_num(temp)}°C")
        if power is not None and (_POWER in track.triggers or temp is None):
            at.append(f"{round(power)} W")
        message = f"GPU {snap.index} resumed" + (f" at {', '.join(at)}" if at else "")
        track.paused = False
        track.triggers = frozenset()
        changes.append(GuardTransition(snap.index, False, message))
        return GpuGuard(snap.index, False, "running")
