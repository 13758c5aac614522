"""The node's benchmark: the suite on the kernel thread, one run at a time, with progress.

Progress goes out as ``bench.progress`` events, the result is stored and announced as
``bench.done``. A run stops early when the node stops or the guard pauses work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor

from core.api.events import BenchDoneEvent, BenchProgressEvent
from core.api.views import BenchmarkResult, BenchProgressView
from core.errors import CommandError
from core.node.context import NodeContext
from core.node.views import benchmark_view


class Benchmarks:
    """Runs the suite for a node; ``after`` runs with each result (inside the run)."""

    def __init__(
        self,
        node: NodeContext,
        kernel_thread: Executor,
        backend_env: dict[str, str] | None,
        after: Callable[[BenchmarkResult], Awaitable[None]],
    ) -> None:
        self._node = node
        self._kernel_thread = kernel_thread
        self._backend_env = backend_env
        self._after = after
        self._task: asyncio.Task[BenchmarkResult] | None = None
        self._cancel = False
        self.progress: BenchProgressView | None = None
        """The last progress of the run in flight (None before its first report)."""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run(self, *, quick: bool) -> BenchmarkResult:
        """Start a run and wait for it (the run goes on if the caller is cancelled)."""
        if self.running:
            raise CommandError("a benchmark is already running")
        self._cancel = False
        self._task = asyncio.create_task(self._run(quick), name="node.benchmark")
        return await asyncio.shield(self._task)

    async def join(self) -> BenchmarkResult:
        """Wait for the run in flight."""
        assert self._task is not None
        return await asyncio.shield(self._task)

    async def cancel(self) -> None:
        """Stop the run in flight at its next check, and wait for it to end."""
        if self.running:
            assert self._task is not None
            self._cancel = True
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self, quick: bool) -> BenchmarkResult:
        from kernels.backend import BenchmarkCancelled, select_backend
        from kernels.suite import run_suite

        loop = asyncio.get_running_loop()
        node = self._node

        def progress(stage: str, fraction: float) -> None:
            event = BenchProgressEvent(stage=stage, fraction=fraction)
            loop.call_soon_threadsafe(self._on_progress, event)

        def should_stop() -> bool:
            return self._cancel or node.work_paused()

        def work() -> dict[str, object]:
            # The first device's backend (this is its thread); NumPy before any device exists.
            devices = node.devices
            backend = devices[0].backend if devices else select_backend(self._backend_env)
            return run_suite(
                backend,
                quick=quick,
                progress=progress,
                should_stop=should_stop,
                model_dir=node.config.model_dir,
            )

        await node.emit_log("info", "bench", f"benchmark started ({'quick' if quick else 'full'})")
        try:
            result = await loop.run_in_executor(self._kernel_thread, work)
        except Exception as exc:
            reason = "cancelled" if isinstance(exc, BenchmarkCancelled) else str(exc)
            await node.emit_log("warning", "bench", f"benchmark stopped: {reason}")
            raise CommandError(f"benchmark stopped: {reason}") from None
        finally:
            self.progress = None
        assert node.store is not None
        await node.store.add_benchmark(result)
        view = benchmark_view(result)
        # NumPy's fp16 matmul has no BLAS: its ~0 TFLOPS would read as a broken device.
        fp16 = (
            "fp16 n/a on numpy (no fp16 BLAS)"
            if view.backend == "numpy"
            else f"fp16 {view.gemm.fp16.tflops:.3f} TFLOPS"
        )
        await node.emit_log(
            "info",
            "bench",
            f"benchmark done: fp32 {view.gemm.fp32.tflops:.3f} TFLOPS, "
            f"{fp16}, {view.bandwidth.gbps:.1f} GB/s, "
            "verified"
            if view.verified
            else "NOT verified (the results did not check out)",
            {"result": result},
        )
        node.publish(BenchDoneEvent(result=view))
        await self._after(view)
        return view

    def _on_progress(self, event: BenchProgressEvent) -> None:
        self.progress = BenchProgressView(stage=event.stage, fraction=event.fraction)
        self._node.publish(event)
