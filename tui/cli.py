"""The ``omnitensor`` command line.

Every sub-command accepts the common options (``--data-dir``, ``--broker``, ``--name``,
``--config``, and ``--json`` where output is data) after its name, and so does the bare
command. Errors a user can act on print one line and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from core import __version__
from core.api import JSON, CommandError
from core.config import Config, load_config
from core.errors import NoNodeRunning, OmniError

PROG = "omnitensor"


def _common(json_flag: bool = True) -> argparse.ArgumentParser:
    """Options every command takes; SUPPRESS keeps a sub-command from resetting them."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("common options")
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="node data dir (default: $OMNITENSOR_HOME or the platform's)",
    )
    group.add_argument(
        "--broker",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="MQTT broker, mqtt://HOST:PORT or mqtts://HOST:PORT",
    )
    group.add_argument(
        "--name", default=argparse.SUPPRESS, help="display name (the handle shown on leaderboards)"
    )
    group.add_argument(
        "--coordinator-key",
        metavar="KEY",
        default=argparse.SUPPRESS,
        help="pin the network's coordinator public key (hex)",
    )
    group.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="config file (default: the platform's config dir)",
    )
    if json_flag:
        group.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="print data as JSON"
        )
    return parent


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="OmniTensor node and live console. With no command, opens the console.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--headless",
        action="store_true",
        help="run the node without the console until SIGINT/SIGTERM",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("status", parents=[common], help="show the running node's state")
    sub.add_parser(
        "attach",
        parents=[_common(json_flag=False)],
        help="open the console on the node running on the data dir (it keeps running after)",
    )

    from tui.netcli import add_network_parsers

    add_network_parsers(sub, common)

    from tui.infer_cli import add_bench_options, add_inference_parsers

    add_inference_parsers(sub, common)

    bench = sub.add_parser("bench", parents=[common], help="run the benchmark kernels")
    bench.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    bench.add_argument(
        "--sampler",
        action="store_true",
        help="measure the telemetry sampler's cost per tick instead",
    )
    bench.add_argument("--ticks", type=int, default=500, help="ticks for --sampler")
    add_bench_options(bench)
    return parser


def _config_from(args: argparse.Namespace) -> Config:
    return load_config(
        {
            "data_dir": getattr(args, "data_dir", None),
            "broker_url": getattr(args, "broker", None),
            "name": getattr(args, "name", None),
            "config_file": getattr(args, "config", None),
            "coordinator_key": getattr(args, "coordinator_key", None),
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except OmniError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except CommandError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from tui.infer_cli import dispatch_inference

    # Inference commands need no node config: they start fast and never touch the data dir.
    inference_result = dispatch_inference(args)
    if inference_result is not None:
        return inference_result
    as_json = bool(getattr(args, "json", False))
    config = _config_from(args)
    if args.command == "status":
        return asyncio.run(_status(config, as_json))
    from tui.netcli import dispatch_network

    network_result = dispatch_network(args, config)
    if network_result is not None:
        return network_result
    if args.command == "bench":
        if args.sampler:
            return asyncio.run(_bench_sampler(config, args.ticks, as_json))
        return asyncio.run(_bench(config, quick=args.quick, as_json=as_json))
    if args.headless:
        from core.headless import configure_logging, run_headless

        configure_logging(json_lines=as_json)
        return asyncio.run(run_headless(config))
    from tui.launch import open_console

    return open_console(config, attach_only=args.command == "attach")


# -- status -------------------------------------------------------------------------------


async def _status(config: Config, as_json: bool) -> int:
    from core.control import SocketNodeClient

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
        print(json.dumps({"running": True, **snap}, indent=2))
    else:
        print(format_status(snap))
    return 0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours}:{minutes:02d}:{secs:02d}"


def format_status(snap: JSON) -> str:
    node, backend = snap["node"], snap["backend"]
    lines = [
        f"node       {node['name']} ({node['short_id']})  pid {node['pid']}  "
        f"up {_duration(node['uptime_s'])}",
        f"id         {node['id']}",
        "backend    "
        + (
            f"none: {backend['error']}"
            if backend.get("error")
            else f"{backend['name']} ({backend['device']})"
        ),
    ]
    telemetry = snap.get("telemetry") or {}
    status = telemetry.get("status") or {}
    if not status.get("available"):
        lines.append(f"gpus       none: {status.get('reason', 'unknown')}")
    for gpu in telemetry.get("gpus", []):
        lines.append(f"gpu {gpu['index']}      " + format_gpu(gpu))
    link = snap.get("link") or {}
    if link.get("state") == "offline":
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(link.get("since_ts", 0)))
        lines.append(f"link       offline since {since} ({link.get('broker')})")
    elif link.get("broker"):
        where = "local network" if link.get("mode") == "local" else link["broker"]
        lines.append(f"link       {link.get('state')}: {where}")
    else:
        lines.append("link       no network")
    counters = snap.get("counters") or {}
    if counters:
        lines.append(
            f"work units {counters.get('work.submitted', 0)} submitted, "
            f"{counters.get('work.acknowledged', 0)} acknowledged, "
            f"{counters.get('outbox.pending', 0)} pending"
        )
    guard = snap.get("guard") or {}
    lines.append(f"guard      {str(guard.get('summary', 'unknown')).removeprefix('guard: ')}")
    work = snap.get("work", {})
    lines.append(f"work       {work.get('state', 'unknown')}")
    last = snap.get("last_benchmark")
    if last:
        lines.append("last bench " + format_bench_line(last))
    else:
        lines.append("last bench none yet (run `omnitensor bench`)")
    return "\n".join(lines)


def _na(value: Any, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def format_gpu(gpu: JSON) -> str:
    if gpu.get("error"):
        return f"{gpu.get('name') or '?'}: error: {gpu['error']}"
    mem_used, mem_total = gpu.get("memory_used_bytes"), gpu.get("memory_total_bytes")
    mem = (
        f"{mem_used / 2**30:.1f}/{mem_total / 2**30:.1f} GiB"
        if mem_used is not None and mem_total is not None
        else "n/a"
    )
    power = _na(gpu.get("power_w"), "{:.0f}")
    limit = _na(gpu.get("power_limit_w"), "{:.0f}")
    return (
        f"{gpu.get('name')}  util {_na(gpu.get('utilization_pct'), '{}%')}  mem {mem}  "
        f"{_na(gpu.get('temperature_c'), '{}°C')}  {power}/{limit} W  "
        f"sm {_na(gpu.get('clock_sm_mhz'), '{} MHz')}  fan {_na(gpu.get('fan_pct'), '{}%')}"
    )


def format_bench_line(result: JSON) -> str:
    gemm = result.get("gemm", {})
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(result.get("ts", time.time())))
    return (
        f"{when}  fp32 {gemm.get('fp32', {}).get('tflops', 0):.3f} TFLOPS  "
        f"fp16 {gemm.get('fp16', {}).get('tflops', 0):.3f} TFLOPS  "
        f"{result.get('bandwidth', {}).get('gbps', 0):.1f} GB/s  "
        f"{'verified' if result.get('verified') else 'NOT verified'}"
    )


# -- bench --------------------------------------------------------------------------------


def _progress_printer() -> Callable[[JSON], None]:
    """Progress on stderr: one rewritten line on a TTY, plain lines per stage otherwise."""
    tty = sys.stderr.isatty()
    last_stage: list[str] = [""]

    def show(event: JSON) -> None:
        stage, fraction = str(event["stage"]), float(event["fraction"])
        if tty:
            bar = "#" * int(fraction * 20)
            sys.stderr.write(f"\r{stage:<20} [{bar:<20}] {fraction:4.0%}")
            sys.stderr.flush()
        elif stage != last_stage[0]:
            print(f"bench: {stage}", file=sys.stderr)
        last_stage[0] = stage

    return show


async def _bench(config: Config, *, quick: bool, as_json: bool) -> int:
    from core.control import SocketNodeClient
    from core.node import Node

    show = _progress_printer()

    async def follow(events: Any) -> None:
        async for event in events:
            if event.get("type") == "bench.progress":
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
            result = await client.command("bench", quick=quick)
        finally:
            follower.cancel()
            await client.close()
    else:
        async with Node(config) as node, node.subscribe() as queue:

            async def drain() -> None:
                while True:
                    event = await queue.get()
                    if event.get("type") == "bench.progress":
                        show(event)

            follower = asyncio.create_task(drain())
            try:
                result = await node.run_benchmark(quick=quick)
            finally:
                follower.cancel()
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(format_bench(result))
    return 0 if result.get("verified") else 1


def format_bench(result: JSON) -> str:
    gemm, bw = result["gemm"], result["bandwidth"]
    lines = [
        f"backend    {result['backend']} ({result['device']})",
        f"gemm fp32  {gemm['fp32']['tflops']:.3f} TFLOPS  (n={gemm['fp32']['n']})",
        f"gemm fp16  {gemm['fp16']['tflops']:.3f} TFLOPS  (n={gemm['fp16']['n']})",
        f"bandwidth  {bw['gbps']:.1f} GB/s  ({bw['kernel']}, {bw['array_bytes'] / 2**20:.0f} MiB)",
    ]
    if "blas_peak_tflops" in result:
        lines.append(
            f"blas peak  {result['blas_peak_tflops']:.3f} TFLOPS  "
            f"(efficiency {result['gemm_efficiency']:.0%})"
        )
    fr = result.get("freivalds", {})
    lines.append(
        f"verified   {'yes' if result['verified'] else 'NO'} (Freivalds, {fr.get('rounds')} rounds"
        + (f": {fr['reason']}" if fr.get("reason") else "")
        + ")"
    )
    return "\n".join(lines)


async def _bench_sampler(config: Config, ticks: int, as_json: bool) -> int:
    from core.fake_nvml import FakeNvml

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
    from core.telemetry import measure_sampler_cost

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


if __name__ == "__main__":
    sys.exit(main())
