"""GpuSampler against the fake NVML backend, and against the real pynvml without a driver."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time

import pynvml
import pytest

from core.node.fake_nvml import FakeGpu, FakeNvml
from core.node.frames import TelemetryFrame
from core.node.telemetry import GpuSampler, measure_sampler_cost
from tests.helpers.nvml import skip_if_nvml_works

GIB = 2**30


async def sample_n(nvml: FakeNvml, n: int, *, slow_ttl: float = 5.0) -> list[TelemetryFrame]:
    async with GpuSampler(nvml, slow_ttl=slow_ttl) as sampler:
        return [await sampler.sample() for _ in range(n)]


async def test_fake_gpus_sampled_with_all_fields() -> None:
    fake = FakeNvml.with_gpus(3)
    fake.set_utilization(0, 100)
    fake.set_temperature(0, 71)
    fake.set_power(0, 250.5)
    (frame,) = await sample_n(fake, 1)

    assert frame.status.available
    assert frame.status.gpu_count == 3
    assert frame.status.driver_version == "550.54.15"
    assert [g.index for g in frame.gpus] == [0, 1, 2]
    assert len({g.name for g in frame.gpus}) == 3
    assert len({g.uuid for g in frame.gpus}) == 3
    for snap, gpu in zip(frame.gpus, fake.gpus, strict=True):
        assert snap.error is None
        assert snap.name == gpu.name
        assert snap.uuid is not None and snap.uuid.startswith("GPU-")
        assert snap.memory_total_bytes == gpu.memory_total_bytes
        assert snap.power_limit_w == gpu.power_limit_w
        for value in (
            snap.utilization_pct,
            snap.memory_utilization_pct,
            snap.memory_used_bytes,
            snap.temperature_c,
            snap.power_w,
            snap.clock_sm_mhz,
            snap.clock_mem_mhz,
            snap.fan_pct,
        ):
            assert value is not None
        assert 0 <= snap.utilization_pct <= 100  # type: ignore[operator]
        assert 0 < snap.memory_used_bytes <= gpu.memory_total_bytes  # type: ignore[operator]

    hot = frame.gpus[0]
    assert hot.utilization_pct == 100
    assert hot.temperature_c == 71
    assert hot.power_w == pytest.approx(250.5)  # milliwatts converted to watts
    assert len(hot.processes) == 1
    assert hot.processes[0].used_memory_bytes is not None
    assert hot.processes[0].used_memory_bytes <= hot.memory_used_bytes  # type: ignore[operator]

    data = json.loads(json.dumps(frame.to_dict()))
    assert data["status"]["gpu_count"] == 3
    assert data["gpus"][0]["temperature_c"] == 71
    assert data["gpus"][0]["processes"][0]["pid"] == hot.processes[0].pid


async def test_bytes_names_from_old_pynvml_are_decoded() -> None:
    fake = FakeNvml.with_gpus(1, bytes_strings=True)
    (frame,) = await sample_n(fake, 1)
    assert frame.gpus[0].name == "NVIDIA GeForce RTX 3080"
    assert isinstance(frame.gpus[0].uuid, str)
    assert frame.status.driver_version == "550.54.15"


async def test_unsupported_fields_are_none_and_not_asked_again() -> None:
    fake = FakeNvml([FakeGpu(unsupported=frozenset({"fan", "power", "clocks", "processes"}))])
    frames = await sample_n(fake, 3, slow_ttl=0.0)  # ttl 0: nothing is served from cache

    for frame in frames:
        snap = frame.gpus[0]
        assert snap.error is None
        assert snap.fan_pct is None
        assert snap.power_w is None
        assert snap.clock_sm_mhz is None and snap.clock_mem_mhz is None
        assert snap.processes == ()
        assert snap.temperature_c is not None and snap.power_limit_w == 320.0
    assert fake.calls["nvmlDeviceGetFanSpeed"] == 1
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 1
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 1
    assert fake.calls["nvmlDeviceGetClockInfo"] == 2  # SM and MEM, once each
    assert fake.calls["nvmlDeviceGetTemperature"] == 3  # supported: asked every tick
    assert fake.calls["nvmlDeviceGetName"] == 3


async def test_slow_fields_are_cached_for_slow_ttl() -> None:
    fake = FakeNvml.with_gpus(1)
    await sample_n(fake, 4, slow_ttl=60.0)
    for slow in (
        "nvmlDeviceGetName",
        "nvmlDeviceGetUUID",
        "nvmlDeviceGetEnforcedPowerLimit",
        "nvmlDeviceGetFanSpeed",
        "nvmlDeviceGetComputeRunningProcesses",
        "nvmlDeviceGetHandleByIndex",
    ):
        assert fake.calls[slow] == 1, slow
    for fast in (
        "nvmlDeviceGetUtilizationRates",
        "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetPowerUsage",
    ):
        assert fake.calls[fast] == 4, fast

    uncached = FakeNvml.with_gpus(1)
    await sample_n(uncached, 4, slow_ttl=0.0)
    assert uncached.calls["nvmlDeviceGetName"] == 4
    assert uncached.calls["nvmlDeviceGetFanSpeed"] == 4


async def test_readings_follow_the_fake_between_ticks() -> None:
    fake = FakeNvml.with_gpus(1)
    async with GpuSampler(fake) as sampler:
        fake.set_temperature(0, 50)
        first = await sampler.sample()
        fake.set_temperature(0, 77)
        second = await sampler.sample()
    assert first.gpus[0].temperature_c == 50
    assert second.gpus[0].temperature_c == 77


async def test_transient_error_on_one_gpu_then_recovers() -> None:
    fake = FakeNvml.with_gpus(2)
    async with GpuSampler(fake) as sampler:
        before = await sampler.sample()
        fake.fail("nvmlDeviceGetTemperature", pynvml.NVML_ERROR_UNKNOWN, index=1)
        during = await sampler.sample()
        after = await sampler.sample()

    assert during.status.available and during.status.gpu_count == 2
    ok, bad = during.gpus
    assert ok.error is None and ok.temperature_c is not None
    assert bad.error == "Unknown Error"
    assert bad.name == before.gpus[1].name  # identity kept so the UI can say which card
    assert bad.temperature_c is None and bad.utilization_pct is None and bad.power_w is None
    assert bad.processes == ()

    assert after.gpus[1].error is None
    assert after.gpus[1].temperature_c is not None
    # A failed device's handle is fetched again (it may be stale after a reset); others aren't.
    assert fake.device_calls["nvmlDeviceGetHandleByIndex", 0] == 1
    assert fake.device_calls["nvmlDeviceGetHandleByIndex", 1] == 2


async def test_lost_gpu_reports_error_while_others_continue() -> None:
    fake = FakeNvml.with_gpus(2)
    async with GpuSampler(fake) as sampler:
        await sampler.sample()
        fake.lose_gpu(1)
        lost = [await sampler.sample() for _ in range(2)]
        fake.restore_gpu(1)
        back = await sampler.sample()

    for frame in lost:
        assert frame.status.available
        assert frame.gpus[0].error is None and frame.gpus[0].utilization_pct is not None
        assert frame.gpus[1].error == "GPU is lost"
        assert frame.gpus[1].memory_used_bytes is None
    json.dumps(lost[0].to_dict())
    assert back.gpus[1].error is None


async def test_missing_library_is_a_status_not_an_exception() -> None:
    fake = FakeNvml.missing_library()
    async with GpuSampler(fake) as sampler:
        assert not sampler.status.available
        frame = await sampler.sample()
        assert not frame.status.available
        assert "library not found" in frame.status.reason.lower()
        assert frame.gpus == ()
        assert frame.status.gpu_count == 0

        # The driver gets installed: the next tick's init retry succeeds.
        fake.library_missing = False
        recovered = await sampler.sample()
    assert recovered.status.available
    assert len(recovered.gpus) == 1 and recovered.gpus[0].error is None
    # Never-successful inits must not be "balanced" by a shutdown; the successful one must be.
    assert fake.calls["nvmlShutdown"] == 1
    assert not fake.initialised


@pytest.mark.parametrize(
    ("function", "index"),
    [("nvmlDeviceGetCount", None), ("nvmlDeviceGetPowerUsage", 0)],
)
async def test_nvml_going_down_mid_run_recovers_after_reinit(
    function: str, index: int | None
) -> None:
    fake = FakeNvml.with_gpus(2)
    async with GpuSampler(fake) as sampler:
        await sampler.sample()
        fake.fail(function, pynvml.NVML_ERROR_DRIVER_NOT_LOADED, index=index)
        down = await sampler.sample()
        assert sampler.status == down.status
        up = await sampler.sample()

    assert not down.status.available
    assert down.status.reason == "NVML error: Driver Not Loaded"
    assert down.gpus == ()
    assert up.status.available and up.status.gpu_count == 2
    # The fake rejects handles from before the re-init, so no error means fresh handles.
    assert all(g.error is None for g in up.gpus)
    assert fake.calls["nvmlInit"] == 2
    assert fake.calls["nvmlShutdown"] == 2  # one after the failure, one on close
    assert not fake.initialised


async def test_no_gpu_found() -> None:
    async with GpuSampler(FakeNvml([])) as sampler:
        frame = await sampler.sample()
    assert not frame.status.available
    assert frame.status.reason == "NVML found no GPU"
    assert frame.status.driver_version == "550.54.15"


async def test_real_pynvml_without_driver_reports_unavailable() -> None:
    skip_if_nvml_works()
    async with GpuSampler() as sampler:
        assert not sampler.status.available
        frame = await sampler.sample()
    assert not frame.status.available
    assert "library" in frame.status.reason.lower()
    assert frame.gpus == ()


@pytest.mark.parametrize("interval", [0.2, 0.0, -1.0, float("nan"), float("inf")])
def test_interval_floor(interval: float) -> None:
    with pytest.raises(ValueError, match=r"at least 0\.25 s"):
        GpuSampler(FakeNvml.with_gpus(1), interval=interval)


async def test_interval_at_floor_is_accepted() -> None:
    async with GpuSampler(FakeNvml.with_gpus(1), interval=0.25) as sampler:
        assert sampler.interval == 0.25


class SlowCountNvml(FakeNvml):
    """Records when each tick's NVML work starts and ends, and how many run at once."""

    def __init__(self, delay: float) -> None:
        super().__init__([FakeGpu()])
        self.delay = delay
        self.spans: list[tuple[float, float]] = []
        self.active = 0
        self.max_active = 0

    def nvmlDeviceGetCount(self) -> int:
        start = time.monotonic()
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        time.sleep(self.delay)
        self.active -= 1
        self.spans.append((start, time.monotonic()))
        return super().nvmlDeviceGetCount()


async def test_frames_keep_cadence_without_overlap() -> None:
    fake = SlowCountNvml(delay=0.05)
    frames: list[TelemetryFrame] = []
    async with GpuSampler(fake, interval=0.25) as sampler:
        fake.spans.clear()  # drop the count done when opening
        async for frame in sampler.frames():
            frames.append(frame)
            if len(frames) == 4:
                break

    assert fake.max_active == 1
    spans = fake.spans
    assert len(spans) == 4
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert next_start >= end
        assert next_start - end >= 0.25 * 0.5  # slept, not sampled back to back
    starts = [s for s, _ in spans]
    assert all(b - a >= 0.25 * 0.8 for a, b in itertools.pairwise(starts))
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4
    assert all(f.sample_seconds >= 0.05 for f in frames)


async def test_slow_samples_never_overlap() -> None:
    fake = SlowCountNvml(delay=0.3)  # slower than the interval
    async with GpuSampler(fake, interval=0.25) as sampler:
        fake.spans.clear()
        got = 0
        async for _ in sampler.frames():
            got += 1
            if got == 2:
                break
        # Concurrent callers are serialised by the single NVML thread too.
        await asyncio.gather(sampler.sample(), sampler.sample())
    assert fake.max_active == 1
    spans = sorted(fake.spans)
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans))


async def test_nvml_runs_in_one_thread_off_the_event_loop() -> None:
    fake = FakeNvml.with_gpus(2)
    async with GpuSampler(fake) as sampler:
        await sampler.sample()
        await sampler.sample()
    assert len(fake.threads) == 1  # init, reads and shutdown all on one thread
    (thread,) = fake.threads
    assert thread is not threading.current_thread()
    assert thread.name.startswith("nvml")


async def test_aclose_shuts_down_and_is_final() -> None:
    fake = FakeNvml.with_gpus(1)
    sampler = GpuSampler(fake)
    await sampler.sample()  # works without the context manager: init on first tick
    assert fake.initialised
    await sampler.aclose()
    await sampler.aclose()  # idempotent
    assert not fake.initialised
    assert fake.calls["nvmlShutdown"] == 1
    assert not sampler.status.available
    with pytest.raises(RuntimeError, match="closed"):
        await sampler.sample()
    assert [f async for f in sampler.frames()] == []


async def test_status_before_start() -> None:
    sampler = GpuSampler(FakeNvml.with_gpus(1))
    assert sampler.status.reason == "not started"
    assert not sampler.status.available
    await sampler.aclose()


async def test_measure_sampler_cost_reports_per_tick_numbers() -> None:
    fake = FakeNvml.with_gpus(2)
    cost = await measure_sampler_cost(fake, ticks=5)
    assert cost["ticks"] == 5
    assert cost["gpus"] == 2
    assert cost["wall_ms_per_tick"] > 0
    assert cost["cpu_ms_per_tick"] >= 0
    assert fake.calls["nvmlDeviceGetCount"] == 7  # open + warm-up + 5 ticks
    with pytest.raises(ValueError, match="ticks"):
        await measure_sampler_cost(fake, ticks=0)


def test_fake_rejects_unknown_hooks() -> None:
    with pytest.raises(ValueError, match="fields"):
        FakeGpu(unsupported=frozenset({"fans"}))
    with pytest.raises(ValueError, match="no function"):
        FakeNvml.with_gpus(1).fail("nvmlDeviceGetTemp", pynvml.NVML_ERROR_UNKNOWN)
