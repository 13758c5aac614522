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
import secrets
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import platformdirs

from core.api.client import JSON, NodeAPI
from core.config import Config
from core.errors import CommandError, ConfigError, NoNodeRunning
from core.game.boards import BOARDS
from core.money import format_omnit
from core.node.local_client import LocalNodeClient
from core.textsafe import printable
from core.transport.mqtt import cancel_and_wait

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
        default=0.0,
        metavar="S",
        help="least seconds between two units for one node (default 0: back to back)",
    )
    coordinator.add_argument(
        "--unit-seconds",
        type=float,
        default=2.0,
        metavar="S",
        help="a unit's size, in seconds of the node's measured throughput (default 2)",
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
    sub.add_parser("quests", parents=[common], help="quests and challenges open to this node")
    quest = sub.add_parser("quest", parents=[common], help="accept, start or claim a quest")
    quest.add_argument("action", choices=("accept", "start", "claim"))
    quest.add_argument("id", help="quest id, as `omnitensor quests` shows it")
    sub.add_parser("season", parents=[common], help="the season, this node's standing")
    sub.add_parser("events", parents=[common], help="active and upcoming reward multipliers")
    for verb in ("stake", "unstake"):
        cmd = sub.add_parser(verb, parents=[common], help=f"{verb} OMNIT as a security deposit")
        cmd.add_argument("amount", help="OMNIT (decimals allowed, e.g. 12.5)")
    share = sub.add_parser(
        "share-gpu", parents=[common], help="share the GPU for a number of hours"
    )
    share.add_argument("--gpu-type", metavar="NAME", help="GPU type (default: the detected card)")
    share.add_argument("--hours", type=float, required=True, metavar="H")
    share.add_argument("--estimate", action="store_true", help="only print the projected reward")
    announce = sub.add_parser(
        "announce", parents=[common], help="(network operator) announce a multiplier event"
    )
    announce.add_argument("--kind", required=True)
    announce.add_argument("--factor", required=True, help='e.g. "2" or "3/2"')
    announce.add_argument("--start", required=True, help="ISO time, e.g. 2026-12-01T00:00Z")
    announce.add_argument("--hours", type=float, required=True)
    announce.add_argument("--title", dest="event_name", default=None, help="display name")


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
    if args.command in ("quests", "season", "events"):
        # The node's own "events" command is its log: multiplier events are "multipliers".
        command = "multipliers" if args.command == "events" else args.command
        return asyncio.run(_show(config, command, as_json))
    if args.command == "quest":
        return asyncio.run(_quest(config, args.action, args.id, as_json))
    if args.command in ("stake", "unstake"):
        return asyncio.run(_stake(config, args.command, args.amount, as_json))
    if args.command == "share-gpu":
        return asyncio.run(_share_gpu(config, args, as_json))
    if args.command == "announce":
        return asyncio.run(_announce(args, as_json))
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
    from core.coordinator.service import Coordinator, CoordinatorSettings, coordinator_banner
    from core.runtime.headless import configure_logging

    if not config.broker.url:
        raise ConfigError("coordinator: --broker URL is required (e.g. mqtt://127.0.0.1:1883)")
    configure_logging(json_lines=bool(getattr(args, "json", False)))
    settings = CoordinatorSettings(
        data_dir=_coordinator_dir(args),
        broker_url=config.broker.url,
        broker=config.broker,
        task_interval_s=args.task_interval,
        unit_seconds=args.unit_seconds,
    )
    async with Coordinator(settings) as coordinator:
        print(coordinator_banner(coordinator), flush=True)
        task = asyncio.create_task(coordinator.run(), name="coordinator")
        try:
            await _until_signal()
        finally:
            coordinator.close()
            await cancel_and_wait(task)
    return 0


async def _devnet(args: argparse.Namespace, config: Config) -> int:
    from core.datadir import prepare_data_dir
    from core.runtime.headless import configure_logging
    from core.runtime.localnet import LocalNetwork

    configure_logging(json_lines=bool(getattr(args, "json", False)))
    prepare_data_dir(config.data_dir)
    net = LocalNetwork(
        config.data_dir / "devnet", port=args.port, task_interval_s=args.task_interval
    )
    async with net:
        join_url = net.url.replace("://", f"://{net.broker.username}@", 1)
        print(f"local network on {net.url}; its password is in {net.password_file}", flush=True)
        print(
            f"join it with: omnitensor --headless --broker {join_url} "
            f"--broker-password-file {net.password_file} "
            f"--coordinator-key {net.coordinator_key} --data-dir DIR --name NAME",
            flush=True,
        )
        await _until_signal()
    return 0


# -- queries -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def node_session(config: Config) -> AsyncIterator[NodeAPI]:
    """The running node's API, or a node started for this command (stopped afterwards)."""
    from core.api.socket_client import SocketNodeClient
    from core.runtime.localnet import open_node

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
                raise CommandError(f"cannot reach the network at {node.link.display_url}")
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
    lines += [
        f"{e['rank']}. {printable(str(e['name']), 64)} - {format_omnit(int(e['amount']))} OMNIT"
        for e in entries
    ]
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
            + printable(f"{entry['kind']}: {entry['reason']}", 200)
        )
    rejected = wallet.get("rejected", [])
    if rejected:
        lines.append("rejected work")
        for item in rejected[:20]:
            lines.append(
                f"  {_when(item['ts'])}  " + printable(f"{item['work_id']}: {item['reason']}")
            )
    return "\n".join(lines)


# -- the game --------------------------------------------------------------------------------


async def _show(config: Config, what: str, as_json: bool) -> int:
    async with node_session(config) as client:
        answer = await client.command(what)
    if as_json:
        print(json.dumps(answer, indent=2))
    elif what == "quests":
        print(format_quests(answer))
    elif what == "season":
        print(format_season(answer))
    else:
        print(format_events(answer))
    return 0


def _left(ts: Any) -> str:
    seconds = float(ts) - time.time()
    if seconds <= 0:
        return "ended"
    hours = seconds / 3600
    return f"{hours / 24:.1f} days left" if hours >= 48 else f"{hours:.1f} h left"


def format_quests(answer: JSON) -> str:
    quests = answer.get("quests", [])
    if not quests:
        return "No quests right now."
    lines = []
    for q in quests:
        lines.append(
            f"{printable(q['id']):<32} {q['state']:<11} {printable(q['title'])}\n{'':<32} "
            + printable(f"{q['progress_text']}; reward {q['reward_text']}; ")
            + _left(q["deadline_ts"])
            + (f"; action: {printable(q['action'])}" if q.get("action") else "")
        )
    return "\n".join(lines)


def format_season(answer: JSON) -> str:
    lines = [f"season {answer['id']}: {answer['days_left']} days left"]
    for board, info in answer.get("ranks", {}).items():
        rank = f"#{info['rank']} of {info['total']}" if info.get("rank") else "not ranked"
        lines.append(f"  {board:<26} {rank}  {format_omnit(int(info['amount']))} OMNIT")
    for award in answer.get("awards", []):
        lines.append("  award: " + printable(f"{award['name']} ({award['detail']})"))
    badges = answer.get("achievements", [])
    lines.append(
        "achievements: "
        + (
            ", ".join(
                f"{printable(a['name'])} "
                f"({time.strftime('%Y-%m-%d', time.localtime(a['earned_ts']))})"
                for a in badges
            )
            or "none yet"
        )
    )
    return "\n".join(lines)


def format_events(answer: JSON) -> str:
    lines = [f"multiplier now: {answer['factor']}x (events combine to at most 3x)"]
    for label in ("active", "upcoming"):
        for e in answer.get(label, []):
            lines.append(
                f"  {label:<8} {printable(e['name'])} ({printable(e['kind'])}) x{e['factor']}  "
                f"{_when(e['start_ts'])} .. {_when(e['end_ts'])}"
            )
    if len(lines) == 1:
        lines.append("  no events announced")
    return "\n".join(lines)


async def _quest(config: Config, action: str, quest_id: str, as_json: bool) -> int:
    async with node_session(config) as client:
        answer = await client.command(f"quest.{action}", id=quest_id)
    if as_json:
        print(json.dumps(answer, indent=2))
    else:
        print(printable(str(answer.get("message", "done"))))
    return 0


async def _stake(config: Config, verb: str, amount_text: str, as_json: bool) -> int:
    from core.money import parse_omnit

    try:
        amount = parse_omnit(amount_text)
    except (ValueError, ArithmeticError):
        raise ConfigError(f"{verb}: {amount_text!r} is not an amount of OMNIT") from None
    async with node_session(config) as client:
        answer = await client.command(verb, amount=amount)
    if as_json:
        print(json.dumps(answer, indent=2))
    else:
        print(
            f"staked {format_omnit(int(answer['staked']), exact=True)} OMNIT; "
            f"available {format_omnit(int(answer['balance']), exact=True)} OMNIT"
        )
    return 0


async def _share_gpu(config: Config, args: argparse.Namespace, as_json: bool) -> int:
    from core.game import estimate_share_reward, format_estimate

    if not 0 < args.hours <= 24 * 366:
        raise ConfigError(f"--hours {args.hours:g}: must be more than 0 and at most a year")
    gpu_type = args.gpu_type or await _detected_gpu(config)
    if gpu_type is None:
        raise ConfigError(
            'share-gpu: no NVIDIA GPU detected here; pass --gpu-type (e.g. "NVIDIA RTX 3080")'
        )
    projected = estimate_share_reward(gpu_type, args.hours)
    if args.estimate:
        if as_json:
            print(json.dumps({"gpu_type": gpu_type, "hours": args.hours, "reward": projected}))
        else:
            print(format_estimate(projected))
        return 0
    return await _share_for(config, gpu_type, args.hours, projected, as_json)


async def _detected_gpu(config: Config) -> str | None:
    """The first GPU's name as NVML reports it (None without a GPU or driver)."""
    from core.node.telemetry import GpuSampler

    nvml: Any = None
    if config.fake_gpus:
        from core.node.fake_nvml import FakeNvml

        nvml = FakeNvml.with_gpus(config.fake_gpus)
    async with GpuSampler(nvml) as sampler:
        frame = await sampler.sample()
    return next((g.name for g in frame.gpus if g.name), None)


async def _share_for(
    config: Config, gpu_type: str, hours: float, projected: int, as_json: bool
) -> int:
    """Run the node for the window, then stop by itself and say what was earned."""
    from core.runtime.headless import configure_logging, run_headless

    print(
        f"sharing {gpu_type} for {hours:g} h; projected "
        f"{format_omnit(projected, exact=True)} OMNIT at base rate",
        flush=True,
    )
    configure_logging(json_lines=as_json)
    code = await run_headless(config, duration_s=hours * 3600)
    async with node_session(config) as client:
        wallet = await client.command("wallet")
    print(f"earned so far: {format_omnit(int(wallet.get('balance', 0)), exact=True)} OMNIT")
    return code


async def _announce(args: argparse.Namespace, as_json: bool) -> int:
    from datetime import datetime
    from fractions import Fraction

    from core.coordinator.game_store import GameService
    from core.coordinator.store import CoordinatorStore
    from core.game import EventError, MultiplierEvent

    try:
        start = datetime.fromisoformat(args.start.replace("Z", "+00:00")).timestamp()
        factor = Fraction(args.factor)
    except ValueError:
        raise ConfigError(
            f"announce: bad --start {args.start!r} or --factor {args.factor!r}"
        ) from None
    now = time.time()
    event = MultiplierEvent(
        id=f"ev-{int(now)}-{secrets.token_hex(3)}",
        kind=args.kind,
        name=args.event_name or args.kind.replace("-", " ").title(),
        factor=factor,
        start=start,
        end=start + args.hours * 3600,
        announced_at=now,
    )
    path = _coordinator_dir(args) / "coordinator.db"
    if not path.exists():
        raise ConfigError(f"announce: no coordinator store at {path} (use --data-dir)")
    async with CoordinatorStore(path) as store:
        try:
            await GameService(store).announce(event, now)
        except EventError as exc:
            raise ConfigError(f"announce refused: {exc}") from None
    print(f"announced {event.name} x{factor} from {_when(start)} for {args.hours:g} h")
    return 0
