"""What a front end sees of a node: its snapshot and the parts of it, as frozen Structs.

The node builds these, the control socket carries them as msgspec JSON and decodes them back
into the same classes, so the console and the CLI read the same attributes in-process and
attached. States are ``Literal``s of the spellings the node really sends. Floats are display
figures only (telemetry, benchmark rates); money is always int base units.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

from core.api.governance import ProposalList
from core.api.network import Board, MultiplierEvents, Quest, Season, Wallet

NetworkMode = Literal["local", "remote"]
"""``local``: the embedded local network this process runs; ``remote``: a broker."""
LinkMode = NetworkMode | Literal["none"]
LinkState = Literal["connecting", "connected", "offline", "no network"]
"""``no network`` goes with mode ``none`` only."""
WorkStateName = Literal["idle", "benchmarking", "paused"]


class NodeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Who the node is and how long it has run."""

    id: str
    short_id: str
    name: str
    version: str
    pid: int
    data_dir: str
    started_ts: float
    uptime_s: float


class BackendInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The compute backend; ``error`` says why there is none (``name`` is then ``none``)."""

    name: str
    device: str
    error: str | None
    note: str | None = None
    """Devices left out and why (a GPU that failed its probe, CuPy not usable), if any."""


# -- telemetry and the guard ------------------------------------------------------------------


class GpuProcessView(msgspec.Struct, frozen=True, kw_only=True):
    """A compute process on a GPU; memory is None where the driver hides it."""

    pid: int
    used_memory_bytes: int | None


class GpuView(msgspec.Struct, frozen=True, kw_only=True):
    """One GPU at one tick; None: not reported. With ``error`` only name and uuid remain."""

    index: int
    name: str | None
    uuid: str | None
    utilization_pct: int | None
    memory_utilization_pct: int | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    temperature_c: int | None
    power_w: float | None
    power_limit_w: float | None
    clock_sm_mhz: int | None
    clock_mem_mhz: int | None
    fan_pct: int | None
    processes: tuple[GpuProcessView, ...]
    error: str | None

    @property
    def memory_pct(self) -> float | None:
        """Memory in use, percent of total (None when either is unknown)."""
        used, total = self.memory_used_bytes, self.memory_total_bytes
        return 100.0 * used / total if used is not None and total else None


class TelemetryStatusView(msgspec.Struct, frozen=True, kw_only=True):
    """Whether GPU telemetry works; ``reason`` says why not, in one line."""

    available: bool
    reason: str
    driver_version: str | None
    gpu_count: int


class TelemetryView(msgspec.Struct, frozen=True, kw_only=True):
    """Every GPU at one tick (``timestamp`` is when the tick started)."""

    timestamp: float
    status: TelemetryStatusView
    gpus: tuple[GpuView, ...]
    sample_seconds: float


class GpuGuardView(msgspec.Struct, frozen=True, kw_only=True):
    """One GPU's guard state: ``reason`` is ``running`` or ``paused: ...``."""

    index: int
    paused: bool
    reason: str


class GuardView(msgspec.Struct, frozen=True, kw_only=True):
    """The thermal/power guard: any GPU paused, one summary line, and each GPU."""

    paused: bool
    summary: str
    gpus: tuple[GpuGuardView, ...]


# -- work ---------------------------------------------------------------------------------------


class BenchProgressView(msgspec.Struct, frozen=True, kw_only=True):
    """A running benchmark: the stage (a kernel's name) and how far it is, 0..1."""

    stage: str
    fraction: float


class _Work(msgspec.Struct, frozen=True, kw_only=True, tag_field="state"):
    """What the node does now; ``state`` names it (the JSON tag)."""

    state: ClassVar[WorkStateName]


class WorkIdle(_Work, frozen=True, kw_only=True, tag="idle"):
    """Nothing running."""

    state: ClassVar[WorkStateName] = "idle"


class WorkBenchmarking(_Work, frozen=True, kw_only=True, tag="benchmarking"):
    """The benchmark suite runs; ``progress`` is None before its first report."""

    state: ClassVar[WorkStateName] = "benchmarking"
    progress: BenchProgressView | None


class WorkPaused(_Work, frozen=True, kw_only=True, tag="paused"):
    """The guard holds work back; ``reason`` is its summary line."""

    state: ClassVar[WorkStateName] = "paused"
    reason: str


WorkState = WorkIdle | WorkBenchmarking | WorkPaused

WorkerStateName = Literal["computing", "idle", "paused"]


class WorkerView(msgspec.Struct, frozen=True, kw_only=True):
    """One device's worker (one per GPU; one on the CPU)."""

    index: int  # the worker's index on the network
    gpu: int | None  # the GPU it runs on (None: the CPU)
    label: str
    state: WorkerStateName
    unit: str | None = None  # the unit it computes now
    done: int = 0  # units committed since the node started
    last_tflops: float | None = None  # the last unit's rate, by the node's own clock


# -- the network link and local counters --------------------------------------------------------


class LinkView(msgspec.Struct, frozen=True, kw_only=True):
    """The node's link to a network; without one, mode ``none`` and the rest None."""

    mode: LinkMode
    broker: str | None = None
    """The broker's URL, never with the credentials it may carry."""
    state: LinkState
    since_ts: float | None = None
    """When ``state`` last changed."""
    coordinator: str | None = None
    """The pinned coordinator key (None until pinned)."""
    coordinator_online: bool | None = None
    """From the coordinator's presence (None until seen)."""
    reason: str = ""
    """While offline: the last connection error (``[Errno 111] Connection refused``)."""
    retry_ts: float | None = None
    """While offline: when the next connection attempt is due."""


NO_LINK = LinkView(mode="none", state="no network")


class Counters(msgspec.Struct, frozen=True, kw_only=True):
    """The node's own count of network work (its store), credited in base units."""

    submitted: int = msgspec.field(name="work.submitted")
    acknowledged: int = msgspec.field(name="work.acknowledged")
    outbox_pending: int = msgspec.field(name="outbox.pending")
    rejected: int = msgspec.field(name="work.rejected")
    credited: int = msgspec.field(name="work.credited")


# -- the benchmark ------------------------------------------------------------------------------


class GemmRun(msgspec.Struct, frozen=True, kw_only=True):
    """One GEMM measurement."""

    dtype: str
    n: int
    tflops: float
    median_s: float
    trials: int


class GemmRuns(msgspec.Struct, frozen=True, kw_only=True):
    fp32: GemmRun
    fp16: GemmRun


class BandwidthRun(msgspec.Struct, frozen=True, kw_only=True):
    """The memory bandwidth measurement."""

    kernel: str
    gbps: float
    array_bytes: int
    bytes_moved: int
    median_s: float
    trials: int


class FreivaldsCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The verified product: Freivalds' check of one GEMM; ``reason`` when it failed."""

    n: int
    dtype: str
    rounds: int
    max_abs_error: float
    tolerance: float
    reason: str | None


class InferenceRun(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The suite's inference stage: the encoder's throughput, or why there is no model."""

    available: bool
    model: str | None = None
    sentences_per_s: float | None = None
    tokens_per_s: float | None = None
    sentences: int | None = None
    batch_size: int | None = None
    dtype: str | None = None
    kernels: str | None = None  # "numba 0.68.1", "numpy passes (...)" or "cupy"
    reason: str | None = None
    hint: str | None = None


class ModelView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The sentence-embedding model: installed (where), or what to run to get it."""

    installed: bool
    model: str
    path: str | None = None
    reason: str | None = None
    hint: str | None = None


class CpuView(msgspec.Struct, frozen=True, kw_only=True):
    """The host's CPU: load per core, and temperature where the machine reports it."""

    name: str
    cores: int
    load_pct: tuple[float, ...]
    temperature_c: float | None = None
    power_w: float | None = None  # the package's, from RAPL where the kernel exposes it


class AlertView(msgspec.Struct, frozen=True, kw_only=True):
    """An alert that holds now ([alerts] in the config): raised once, listed until it clears."""

    id: str
    kind: str
    message: str
    since_ts: float


class InferenceWorkView(msgspec.Struct, frozen=True, kw_only=True):
    """The node's inference work on the network: now, and the verdicts since it started."""

    current: str | None = None  # "inference task ..." or "quality round ...", or idle
    tasks: int = 0  # tasks encoded and committed
    accepted: int = 0
    rejected: int = 0
    last_rejection: str = ""  # the coordinator's reason: who disagreed, the similarity
    rounds: int = 0  # quality rounds answered


class BenchmarkResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The benchmark suite's result. The BLAS peak is measured by a full run on NumPy only."""

    backend: str
    device: str
    llc_bytes: int
    quick: bool
    seed: int
    gemm: GemmRuns
    blas_peak_tflops: float | None = None
    gemm_efficiency: float | None = None
    bandwidth: BandwidthRun
    verified: bool
    freivalds: FreivaldsCheck
    inference: InferenceRun | None = None


class LastBenchmark(BenchmarkResult, frozen=True, kw_only=True):
    """The stored result of the node's last benchmark, with when it ran."""

    ts: float


# -- the whole snapshot -------------------------------------------------------------------------


class NodeSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The node's whole state now. The network's sections are None until the coordinator
    answered (or when the node is on no network)."""

    node: NodeInfo
    backend: BackendInfo
    telemetry: TelemetryView | None
    guard: GuardView | None
    work: WorkState
    workers: tuple[WorkerView, ...] = ()
    """One per device the node works on; empty when it is on no network (nothing to do)."""
    model: ModelView | None = None
    inference: InferenceWorkView | None = None
    """Inference tasks and quality rounds (None when the node is on no network)."""
    alerts: tuple[AlertView, ...] = ()
    cpu: CpuView | None = None
    earnings_hourly: tuple[int, ...] = ()
    """Base units of pay for work and liveness per hour over the last 24 h, oldest first:
    the coordinator's ledger (``Wallet.work_hourly``), or this node's unit receipts before
    its first wallet answer."""
    earnings_daily: tuple[int, ...] = ()
    """The same per day over the last 7 days, oldest first."""
    link: LinkView
    counters: Counters
    leaderboards: dict[str, Board]
    """The retained boards the network publishes, by category."""
    wallet: Wallet | None = None
    quests: tuple[Quest, ...] | None = None
    season: Season | None = None
    multiplier: MultiplierEvents | None = None
    governance: ProposalList | None = None
    """Proposals and tallies, this node's votes and weight (docs/governance.md)."""
    last_benchmark: LastBenchmark | None = None
