"""Network sub-commands: coordinator, devnet, leaderboard, wallet.

Queries go through a node: the one running on the data dir (over its control socket) or,
when none runs, a node started for the query (joining the configured broker, or the local
network when none is configured), so the answer always comes from the network itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import platformdirs

from core.api import JSON, CommandError, LocalNodeClient, NodeAPI
from core.config import Config
from core.errors import ConfigError, NoNodeRunning
from core.ledger import BOARDS, format_omnit

CONNECT_WAIT_S = 20.0


def add_network_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    coordinator = sub.add_parser(
        "coordinator", parents=[common], help="run the network's coordinator (network operator)"
    )
    coordinator.add_argument(
        "--task-interval",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds of shared time one work unit covers (default 10)",
    )
    devnet = sub.add_parser(
        "devnet", parents=[common], help="run a local network (broker + coordinator) only"
    )
    devnet.add_argument("--port", type=int, default=1883, help="loopback port (default 1883)")
    devnet.add_argument("--task-interval", type=float, default=10.0, metavar="S")

    board = sub.add_parser("leaderboard", parents=[common], help="show a leaderboard")
    board.add_argument("--category", default="gpu-contributors", choices=BOARDS)
    board.add_argument("--top", type=int, default=3, metavar="N", help="rows (default 3)")
    board.add_argument("--season", metavar="S", help="season (e.g. 2026-Q4) or month")
    sub.add_parser("wallet", parents=[common], help="this node's balance and ledger entries")


def dispatch_network(args: argparse.Namespace, config: Config) -> int | None:
    """Run a network sub-command; None when ``args`` names another command."""
    as_json = bool(getattr(args, "json", False))
    if args.command == "coordinator":
        return asyncio.run(_coordinator(args, config))
    if args.command == "devnet":
        return asyncio.run(_devnet(args, config))
    if args.command == "leaderboard":
        if not 1 <= args.top <= 1000:
            raise ConfigError(f"--top {args.top}: must be 1..1000")
        return asyncio.run(_leaderboard(config, args.category, args.top, args.season, as_json))
    if args.command == "wallet":
        return asyncio.run(_wallet(config, as_json))
    return None


# -- running services ----------------------------------------------------------------------


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _coordinator_dir(args: argparse.Namespace) -> Path:
    explicit = getattr(args, "data_dir", None)
    if explicit:
        return Path(explicit).expanduser().absolute()
    return Path(platformdirs.user_data_dir("omnitensor-coordinator"))


async def _coordinator(args: argparse.Namespace, config: Config) -> int:
    from core.coordinator import Coordinator, CoordinatorSettings, coordinator_banner
    from core.headless import configure_logging

    if not config.broker.url:
        raise ConfigError("coordinator: --broker URL is required (e.g. mqtt://127.0.0.1:1883)")
    configure_logging(json_lines=bool(getattr(args, "json", False)))
    settings = CoordinatorSettings(
        data_dir=_coordinator_dir(args),
        broker_url=config.broker.url,
        broker=config.broker,
        task_interval_s=args.task_interval,
    )
    async with Coordinator(settings) as coordinator:
        print(coordinator_banner(coordinator), flush=True)
        task = asyncio.create_task(coordinator.run(), name="coordinator")
        try:
            await _until_signal()
        finally:
            coordinator.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return 0


async def _devnet(args: argparse.Namespace, config: Config) -> int:
    from core.headless import configure_logging
    from core.localnet import LocalNetwork
    from core.node import prepare_data_dir

    configure_logging(json_lines=bool(getattr(args, "json", False)))
    prepare_data_dir(config.data_dir)
    net = LocalNetwork(
        config.data_dir / "devnet", port=args.port, task_interval_s=args.task_interval
    )
    async with net:
        print(f"local network on {net.url}", flush=True)
        print(
            f"join it with: omnitensor --headless --broker {net.url} "
            f"--coordinator-key {net.coordinator_key} --data-dir DIR --name NAME",
            flush=True,
        )
        await _until_signal()
    return 0


# -- queries -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def node_session(config: Config) -> AsyncIterator[NodeAPI]:
    """The running node's API, or a node started for this command (stopped afterwards)."""
    from core.control import SocketNodeClient
    from core.localnet import open_node

    try:
        client = await SocketNodeClient.connect(config.socket_path)
    except NoNodeRunning:
        pass
    else:
        try:
            yield client
        finally:
            await client.close()
        return
    async with contextlib.AsyncExitStack() as stack:
        node = await open_node(config, stack)
        deadline = time.monotonic() + CONNECT_WAIT_S
        while node.link is not None and node.link.state != "connected":
            if time.monotonic() > deadline:
                raise CommandError(f"cannot reach the network at {node.link.url}")
            await asyncio.sleep(0.1)
        yield LocalNodeClient(node)


async def _leaderboard(
    config: Config, category: str, top: int, season: str | None, as_json: bool
) -> int:
    async with node_session(config) as client:
        board = await client.command("leaderboard", category=category, limit=top, season=season)
    if as_json:
        print(json.dumps(board, indent=2))
    else:
        print(format_leaderboard(board))
    return 0


def format_leaderboard(board: JSON) -> str:
    """The documented form: ``Top 3 Contributors:`` then ``1. user123 - 1200 OMNIT``."""
    entries = board.get("entries", [])
    if not entries:
        return f"No contributors yet on {board.get('category')} ({board.get('season')})."
    lines = [f"Top {len(entries)} Contributors:"]
    lines += [f"{e['rank']}. {e['name']} - {format_omnit(int(e['amount']))} OMNIT" for e in entries]
    return "\n".join(lines)


async def _wallet(config: Config, as_json: bool) -> int:
    async with node_session(config) as client:
        wallet = await client.command("wallet")
    if as_json:
        print(json.dumps(wallet, indent=2))
    else:
        print(format_wallet(wallet))
    return 0


def _when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))


def format_wallet(wallet: JSON) -> str:
    balance = int(wallet.get("balance", 0))
    work = wallet.get("work", {})
    lines = [
        f"balance   {format_omnit(balance, exact=True)} OMNIT ({balance} base units)",
        f"work      {work.get('accepted', 0)} verified, {work.get('rejected', 0)} rejected",
    ]
    entries = wallet.get("entries", [])
    lines.append(f"entries   {len(entries)} (newest first)")
    for entry in entries[:20]:
        amount = int(entry["amount"])
        sign = "+" if amount >= 0 else ""
        lines.append(
            f"  {_when(entry['ts'])}  {sign}{format_omnit(amount, exact=True)} OMNIT  "
            f"{entry['kind']}: {entry['reason']}"
        )
    rejected = wallet.get("rejected", [])
    if rejected:
        lines.append("rejected work")
        for item in rejected[:20]:
            lines.append(f"  {_when(item['ts'])}  {item['work_id']}: {item['reason']}")
    return "\n".join(lines)
