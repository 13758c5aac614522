"""The node's own commands: ``status``, ``bench`` (and ``--sampler``), ``--headless``.

``status`` asks the node running on the data dir; ``bench`` asks it too when one runs (it
owns the GPU), else runs the suite in a node started for the command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from core.api.commands import RunBench
from core.api.events import BenchProgressEvent, NodeEvent
from core.config import Config
from core.errors import NoNodeRunning
from tui.cli import inference
from tui.cli.output import format_bench, format_status, print_json

PROG = "omnitensor"


def add_status_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    sub.add_parser("status", parents=[common], help="show the running node's state")


def add_bench_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    bench = sub.add_parser("bench", parents=[common], help="run the benchmark kernels")
    bench.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    bench.add_argument(
        "--sampler",
        action="store_true",
        help="measure the telemetry sampler's cost per tick instead",
    )
    bench.add_argument("--ticks", type=int, default=500, help="ticks for --sampler")
    inference.add_bench_options(bench)


def run(args: argparse.Namespace, config: Config, as_json: bool) -> int | None:
    """Run ``status`` or ``bench``; None when ``args`` names another command."""
    if args.command == "status":
        return asyncio.run(_status(config, as_json))
    if args.command == "bench":
        if args.sampler:
            return asyncio.run(_bench_sampler(config, args.ticks, as_json))
        return asyncio.run(_bench(config, quick=args.quick, as_json=as_json))
    return None


def run_headless(config: Config, as_json: bool) -> int:
    """The node without the console, until SIGINT/SIGTERM."""
    from core.runtime.headless import configure_logging, run_headless

    configure_logging(json_lines=as_json)
    return asyncio.run(run_headless(config))


# -- status -------------------------------------------------------------------------------


async def _status(config: Config, as_json: bool) -> int:
    from core.api.socket_client import SocketNodeClient

    try:
        client = await SocketNodeClient.connect(config.socket_path)
    except NoNodeRunning as exc:
        if as_json:
            print(json.dumps({"running": False, "error": str(exc)}))
        else:
            print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        snap = await client.snapshot()
    finally:
        await client.close()
    if as_json:
        print_json({"running": True, **msgspec.to_builtins(snap)})
    else:
        print(format_status(snap))
    return 0


# -- bench --------------------------------------------------------------------------------


def _progress_printer() -> Callable[[BenchProgressEvent], None]:
    """Progress on stderr: one rewritten line on a TTY, plain lines per stage otherwise."""
    tty = sys.stderr.isatty()
    last_stage: list[str] = [""]

    def show(event: BenchProgressEvent) -> None:
        stage, fraction = event.stage, event.fraction
        if tty:
            bar = "#" * int(fraction * 20)
            sys.stderr.write(f"\r{stage:<20} [{bar:<20}] {fraction:4.0%}")
            sys.stderr.flush()
        elif stage != last_stage[0]:
            print(f"bench: {stage}", file=sys.stderr)
        last_stage[0] = stage

    return show


async def _bench(config: Config, *, quick: bool, as_json: bool) -> int:
    from core.api.socket_client import SocketNodeClient
    from core.node.service import Node

    show = _progress_printer()

    async def follow(events: AsyncIterator[NodeEvent]) -> None:
        async for event in events:
            if isinstance(event, BenchProgressEvent):
                show(event)

    # A node running on this data dir owns the GPU: ask it, so work is not doubled.
    try:
        client = await SocketNodeClient.connect(config.socket_path)
    except NoNodeRunning:
        client = None
    if client is not None:
        follower = asyncio.create_task(follow(client.events()))
        try:
            await asyncio.sleep(0)
            result = await client.command(RunBench(quick=quick))
        finally:
            follower.cancel()
            await client.close()
    else:
        async with Node(config) as node, node.subscribe() as queue:

            async def drain() -> None:
                while True:
                    event = await queue.get()
                    if isinstance(event, BenchProgressEvent):
                        show(event)

            follower = asyncio.create_task(drain())
            try:
                result = await node.run_benchmark(quick=quick)
            finally:
                follower.cancel()
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    if as_json:
        print_json(result)
    else:
        print(format_bench(result))
    return 0 if result.verified else 1


async def _bench_sampler(config: Config, ticks: int, as_json: bool) -> int:
    from core.node.fake_nvml import FakeNvml

    nvml: Any
    label: str
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        nvml, label = pynvml, "nvml"
    except Exception:
        count = config.fake_gpus or 4
        nvml, label = FakeNvml.with_gpus(count), f"fake ({count} GPUs, no NVML here)"
    from core.node.telemetry import measure_sampler_cost

    # As the node runs it (slow fields cached 5 s), and the worst case (every field, every tick).
    cached = await measure_sampler_cost(nvml, ticks, slow_ttl=5.0)
    uncached = await measure_sampler_cost(nvml, ticks, slow_ttl=0.0)
    figures: dict[str, Any] = {"backend": label, "cached": cached, "uncached": uncached}
    if as_json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"backend  {label}")
        for key in ("cached", "uncached"):
            f = figures[key]
            print(
                f"{key:<8} {f['wall_ms_per_tick']:.3f} ms wall, {f['cpu_ms_per_tick']:.3f} ms CPU "
                f"per tick ({int(f['gpus'])} GPUs, {int(f['ticks'])} ticks)"
            )
    return 0
