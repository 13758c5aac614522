"""The network's commands for a contributor: leaderboard, wallet, quests, season, events,
stakes and ``share-gpu``.

Queries go through a node: the one running on the data dir (over its control socket) or,
when none runs, a node started for the query (joining the configured broker, or the local
network when none is configured), so the answer always comes from the network itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from core.api.client import NodeAPI
from core.api.commands import (
    AcceptQuest,
    ClaimQuest,
    GetLeaderboard,
    GetMultipliers,
    GetQuests,
    GetSeason,
    GetWallet,
    QuestStarted,
    Request,
    Stake,
    StartQuest,
    Unstake,
)
from core.api.network import QuestAccepted, QuestClaimed
from core.config import Config
from core.errors import CommandError, ConfigError, NoNodeRunning
from core.game.boards import BOARDS
from core.node.local_client import LocalNodeClient
from core.textsafe import printable
from tui.cli.output import (
    format_events,
    format_leaderboard,
    format_quests,
    format_season,
    format_stake,
    format_wallet,
    print_json,
)
from tui.format import omnit_label

# How long a node started for one command waits for a connection in progress (a broker
# that refuses, or cannot be resolved, fails at once).
CONNECT_WAIT_S = 20.0
# The local network's embedded broker starts with the node: a few attempts, not one.
LOCAL_ATTEMPTS = 3
R = TypeVar("R")


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    board = sub.add_parser("leaderboard", parents=[common], help="show a leaderboard")
    board.add_argument(
        "--category",
        default="gpu-contributors",
        choices=BOARDS,
        help="which board (default: gpu-contributors; data-validators-monthly: this month's)",
    )
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


def run(args: argparse.Namespace, config: Config, as_json: bool) -> int | None:
    """Run a network command; None when ``args`` names another command."""
    command = args.command
    if command == "leaderboard":
        if not 1 <= args.top <= 1000:
            raise ConfigError(f"--top {args.top}: must be 1..1000")
        request = GetLeaderboard(category=args.category, limit=args.top, season=args.season)
        return asyncio.run(_show(config, request, format_leaderboard, as_json))
    if command == "wallet":
        return asyncio.run(_show(config, GetWallet(), format_wallet, as_json))
    if command == "quests":
        return asyncio.run(_show(config, GetQuests(), format_quests, as_json))
    if command == "season":
        return asyncio.run(_show(config, GetSeason(), format_season, as_json))
    if command == "events":
        # The node's own "events" command is its log: multiplier events are "multipliers".
        return asyncio.run(_show(config, GetMultipliers(), format_events, as_json))
    if command == "quest":
        if args.action == "accept":
            return asyncio.run(_show(config, AcceptQuest(id=args.id), _message, as_json))
        if args.action == "start":
            return asyncio.run(_show(config, StartQuest(id=args.id), _message, as_json))
        return asyncio.run(_show(config, ClaimQuest(id=args.id), _message, as_json))
    if command in ("stake", "unstake"):
        return asyncio.run(_stake(config, command, args.amount, as_json))
    if command == "share-gpu":
        return asyncio.run(_share_gpu(config, args, as_json))
    return None


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
        # The command's own error names the broker and the reason: not the node's log too.
        node_log = logging.getLogger("omnitensor.node")
        node_log.addFilter(_quiet_offline)
        stack.callback(node_log.removeFilter, _quiet_offline)
        # A node for one command: no first benchmark (it would be cancelled half-way).
        node = await open_node(dataclasses.replace(config, first_benchmark=False), stack)
        link = node.link
        deadline = time.monotonic() + CONNECT_WAIT_S
        while link is not None and link.state != "connected":
            # A refused or failed connection is an answer: only one in progress is waited for.
            failed = link.failures >= (1 if link.mode == "remote" else LOCAL_ATTEMPTS)
            if failed or time.monotonic() > deadline:
                why = f": {link.reason}" if link.reason else f" within {CONNECT_WAIT_S:g}s"
                raise CommandError(f"cannot reach the broker at {link.display_url}{why}")
            await asyncio.sleep(0.05)
        yield LocalNodeClient(node)


def _quiet_offline(record: logging.LogRecord) -> bool:
    """Drop the link's "offline: broker ..." line (a one-off command reports it itself)."""
    return not (
        getattr(record, "kind", None) == "link" and record.getMessage().startswith("offline:")
    )


async def _ask(config: Config, request: Request[R]) -> R:
    async with node_session(config) as client:
        return await client.command(request)


async def _show(
    config: Config, request: Request[R], text: Callable[[R], str], as_json: bool
) -> int:
    """Ask the network, print the answer as ``text(answer)`` or as JSON."""
    answer = await _ask(config, request)
    if as_json:
        print_json(answer)
    else:
        print(text(answer))
    return 0


def _message(answer: QuestAccepted | QuestStarted | QuestClaimed) -> str:
    return printable(answer.message)


async def _stake(config: Config, verb: str, amount_text: str, as_json: bool) -> int:
    from core.money import BASE_UNITS_PER_OMNIT, omnit_text, parse_omnit

    try:
        amount = parse_omnit(amount_text)
    except (ValueError, ArithmeticError):
        shown = printable(amount_text, 40)
        if _is_decimal(amount_text):
            smallest = omnit_text(1)
            raise ConfigError(
                f"{verb}: {shown} OMNIT is finer than {smallest}, the smallest amount"
            ) from None
        raise ConfigError(f"{verb}: {shown!r} is not an amount of OMNIT") from None
    if amount <= 0:
        raise ConfigError(f"{verb}: {omnit_text(amount)}: the amount must be more than 0 OMNIT")
    if amount >= 2**63:
        most = omnit_text((2**63 - 1) // BASE_UNITS_PER_OMNIT * BASE_UNITS_PER_OMNIT)
        raise ConfigError(f"{verb}: {omnit_text(amount)}: more than {most}")
    request = Stake(amount=amount) if verb == "stake" else Unstake(amount=amount)
    return await _show(config, request, format_stake, as_json)


def _is_decimal(text: str) -> bool:
    from decimal import Decimal, InvalidOperation

    try:
        return Decimal(text).is_finite()
    except (InvalidOperation, ValueError):
        return False


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
        f"{omnit_label(projected, grouped=False)} at base rate",
        flush=True,
    )
    configure_logging(json_lines=as_json)
    code = await run_headless(config, duration_s=hours * 3600)
    wallet = await _ask(config, GetWallet())
    print(f"earned so far: {omnit_label(wallet.balance, grouped=False)}")
    return code
