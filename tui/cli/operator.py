"""The network operator's commands: ``coordinator``, ``devnet`` and ``announce``.

These run or change the network itself, not a contributor's node: the coordinator and a
local development network as long-running services, and multiplier events announced in the
coordinator's store (through ``core.coordinator.operator``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

import platformdirs

from core.config import Config
from core.errors import ConfigError
from core.game import EventError
from tui.format import date_time_seconds


def add_service_parsers(
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
    coordinator.add_argument(
        "--quality-bank",
        type=Path,
        metavar="FILE",
        help="a private quality-round question bank (default: the shipped, public one; "
        "docs/inference-network.md)",
    )
    devnet = sub.add_parser(
        "devnet", parents=[common], help="run a local network (broker + coordinator) only"
    )
    devnet.add_argument("--port", type=int, default=1883, help="loopback port (default 1883)")
    devnet.add_argument("--task-interval", type=float, default=10.0, metavar="S")


def add_announce_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    announce = sub.add_parser(
        "announce", parents=[common], help="(network operator) announce a multiplier event"
    )
    announce.add_argument("--kind", required=True)
    announce.add_argument("--factor", required=True, help='e.g. "2" or "3/2"')
    announce.add_argument("--start", required=True, help="ISO time, e.g. 2026-12-01T00:00Z")
    announce.add_argument("--hours", type=float, required=True)
    announce.add_argument("--title", dest="event_name", default=None, help="display name")


def add_consensus_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    consensus = sub.add_parser(
        "quality-consensus",
        parents=[common],
        help="(network operator) trusted nodes' answers to the quality bank's unknown questions",
    )
    consensus.add_argument(
        "--min-votes", type=int, default=5, help="voters a question needs (default 5)"
    )
    consensus.add_argument(
        "--min-share", default="3/4", help="share of them on one answer (default 3/4)"
    )
    consensus.add_argument(
        "--bank", type=Path, help="the bank the coordinator runs (default: the shipped one)"
    )
    consensus.add_argument(
        "--write-bank",
        type=Path,
        metavar="OUT",
        help="write the bank with the agreed answers filled in (for --quality-bank)",
    )


def run(args: argparse.Namespace, config: Config, as_json: bool) -> int | None:
    """Run an operator command; None when ``args`` names another command."""
    if args.command == "coordinator":
        return asyncio.run(_coordinator(args, config, as_json))
    if args.command == "devnet":
        return asyncio.run(_devnet(args, config, as_json))
    if args.command == "announce":
        return asyncio.run(_announce(args))
    if args.command == "quality-consensus":
        return asyncio.run(_quality_consensus(args, as_json))
    return None


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


def coordinator_dir(args: argparse.Namespace) -> Path:
    """The coordinator's data dir: ``--data-dir``, or the platform's."""
    explicit = getattr(args, "data_dir", None)
    if explicit:
        return Path(explicit).expanduser().absolute()
    return Path(platformdirs.user_data_dir("omnitensor-coordinator"))


async def _coordinator(args: argparse.Namespace, config: Config, as_json: bool) -> int:
    from core.coordinator.service import Coordinator, CoordinatorSettings, coordinator_banner
    from core.runtime.headless import configure_logging
    from core.transport.mqtt import cancel_and_wait

    if not config.broker.url:
        raise ConfigError("coordinator: --broker URL is required (e.g. mqtt://127.0.0.1:1883)")
    configure_logging(json_lines=as_json)
    settings = CoordinatorSettings(
        data_dir=coordinator_dir(args),
        broker_url=config.broker.url,
        broker=config.broker,
        task_interval_s=args.task_interval,
        unit_seconds=args.unit_seconds,
        quality_bank=args.quality_bank,
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


async def _devnet(args: argparse.Namespace, config: Config, as_json: bool) -> int:
    from core.datadir import prepare_data_dir
    from core.runtime.headless import configure_logging
    from core.runtime.localnet import LocalNetwork

    configure_logging(json_lines=as_json)
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


async def _announce(args: argparse.Namespace) -> int:
    from datetime import datetime
    from fractions import Fraction

    from core.coordinator.operator import NoCoordinatorStore, announce_event

    try:
        start = datetime.fromisoformat(args.start.replace("Z", "+00:00")).timestamp()
        factor = Fraction(args.factor)
    except ValueError:
        raise ConfigError(
            f"announce: bad --start {args.start!r} or --factor {args.factor!r}"
        ) from None
    try:
        event = await announce_event(
            coordinator_dir(args),
            kind=args.kind,
            name=args.event_name,
            factor=factor,
            start=start,
            hours=args.hours,
        )
    except NoCoordinatorStore as exc:
        raise ConfigError(f"announce: {exc} (use --data-dir)") from None
    except EventError as exc:
        raise ConfigError(f"announce refused: {exc}") from None
    print(f"announced {event.name} x{factor} from {date_time_seconds(start)} for {args.hours:g} h")
    return 0


async def _quality_consensus(args: argparse.Namespace, as_json: bool) -> int:
    import json
    from fractions import Fraction

    from core.coordinator.operator import NoCoordinatorStore
    from core.coordinator.quality_consensus import tally_unknown_votes
    from kernels.inference import InferenceError
    from kernels.inference.quality import default_bank_path, load_bank

    try:
        min_share = Fraction(args.min_share)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"quality-consensus: bad --min-share {args.min_share!r}") from None
    if not 0 < min_share <= 1 or args.min_votes < 1:
        raise ConfigError("quality-consensus: --min-share must be in (0, 1], --min-votes >= 1")
    try:
        bank_path = args.bank or default_bank_path()
        bank = await asyncio.to_thread(load_bank, bank_path)
        tallies = await tally_unknown_votes(coordinator_dir(args))
    except NoCoordinatorStore as exc:
        raise ConfigError(f"quality-consensus: {exc} (use --data-dir)") from None
    except InferenceError as exc:
        raise ConfigError(f"quality-consensus: {exc}") from None
    unknown = {q.id for q in bank if q.answer is None}
    tallies = [t for t in tallies if t.question_id in unknown]  # votes on this bank's questions
    agreed = {t.question_id: t for t in tallies if t.agreed(args.min_votes, min_share) is not None}
    if as_json:
        rows = [
            {
                "id": t.question_id,
                "voters": t.voters,
                "counts": {str(k): v for k, v in sorted(t.counts.items())},
                "agreed": t.agreed(args.min_votes, min_share),
            }
            for t in tallies
        ]
        print(json.dumps({"unknown": len(unknown), "questions": rows}, indent=2))
    else:
        for t in tallies:
            answer, count = t.top
            verdict = "agreed" if t.question_id in agreed else "open"
            print(f"{t.question_id}  {t.voters:3d} voters  answer {answer} ({count}/{t.voters})"
                  f"  {verdict}")  # fmt: skip
        print(
            f"{len(tallies)} of {len(unknown)} unknown questions voted on, {len(agreed)} agreed "
            f"(at least {args.min_votes} voters, {min_share} of them on one answer)"
        )
    if args.write_bank is not None:
        await asyncio.to_thread(_write_bank, Path(bank_path), args.write_bank, agreed)
        try:  # what was written loads as a bank
            await asyncio.to_thread(load_bank, args.write_bank)
        except InferenceError as exc:
            raise ConfigError(f"quality-consensus: wrote an unusable bank: {exc}") from None
        if not as_json:
            print(f"wrote {args.write_bank}: {len(agreed)} more known questions")
    return 0


def _write_bank(source: Path, out: Path, agreed: dict[str, Any]) -> None:
    import json

    from core.coordinator.quality_consensus import bank_with_answers

    raw = json.loads(source.read_text(encoding="utf-8"))
    text = json.dumps(bank_with_answers(raw, agreed), ensure_ascii=False, indent=1) + "\n"
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"quality-consensus: cannot write {out}: {exc.strerror}") from None
