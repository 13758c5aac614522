"""The ``omnitensor`` command line: the parser and the dispatch to each audience's commands.

Every sub-command accepts the common options (``--data-dir``, ``--broker``, ``--name``,
``--config``, and ``--json`` where output is data) after its name, and so does the bare
command. Errors a user can act on print one line and exit non-zero, never a traceback.
The commands live by audience: ``tui.cli.node`` (this node), ``tui.cli.network`` (the
network, as a contributor), ``tui.cli.operator`` (running the network).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any

from core import __version__
from core.config import Config, load_config
from core.errors import OmniError
from core.textsafe import printable
from tui.cli import (
    data,
    fleet,
    governance,
    inference,
    jobs,
    network,
    node,
    operator,
    selftest,
    service,
)

PROG = "omnitensor"


class _Parser(argparse.ArgumentParser):
    """argparse, but a misspelt command is one line with the closest name, not the usage."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if isinstance(action, argparse._SubParsersAction) and choices and value not in choices:
            names = [str(name) for name in choices]
            close = difflib.get_close_matches(str(value), names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"one of: {', '.join(names)}"
            self.exit(2, f"{PROG}: error: unknown command {printable(str(value))!r}; {hint}\n")
        super()._check_value(action, value)


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
        "--trust-first-use",
        action="store_true",
        default=argparse.SUPPRESS,
        help="on a remote broker, pin the first coordinator key heard (else --coordinator-key)",
    )
    group.add_argument(
        "--broker-password-file",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="file (mode 0600) holding the broker password; never put it in --broker",
    )
    group.add_argument(
        "--gpus",
        metavar="LIST",
        default=argparse.SUPPRESS,
        help="GPUs that work, by index, e.g. 0,2 (default: every usable one)",
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
    parser = _Parser(
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
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=argparse.ArgumentParser
    )
    # In the order `--help` lists them.
    node.add_status_parser(sub, common)
    sub.add_parser(
        "attach",
        parents=[_common(json_flag=False)],
        help="open the console on the node running on the data dir (it keeps running after)",
    )
    fleet.add_parser(sub, common)
    operator.add_service_parsers(sub, common)
    service.add_parser(sub, common)
    network.add_parsers(sub, common)
    inference.add_inference_parsers(sub, common)
    jobs.add_jobs_parser(sub, common)
    data.add_data_parsers(sub, common)
    operator.add_announce_parser(sub, common)
    operator.add_consensus_parser(sub, common)
    governance.add_governance_parsers(sub, common)
    node.add_bench_parser(sub, common)
    selftest.add_parser(sub, common)
    return parser


def _config_from(args: argparse.Namespace) -> Config:
    return load_config(
        {
            "data_dir": getattr(args, "data_dir", None),
            "broker_url": getattr(args, "broker", None),
            "name": getattr(args, "name", None),
            "config_file": getattr(args, "config", None),
            "coordinator_key": getattr(args, "coordinator_key", None),
            "broker.trust_first_use": getattr(args, "trust_first_use", None),
            "broker.password_file": getattr(args, "broker_password_file", None),
            "gpus": getattr(args, "gpus", None),
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except OmniError as exc:  # every refusal, CommandError included
        print(f"{PROG}: error: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    # Inference commands need no node config: they start fast and never touch the data dir.
    code = inference.dispatch_inference(args)
    if code is not None:
        return code
    as_json = bool(getattr(args, "json", False))
    config = _config_from(args)
    for run in (
        node.run,
        network.run,
        jobs.run,
        data.run,
        governance.run,
        operator.run,
        selftest.run,
        service.run,
    ):
        code = run(args, config, as_json)
        if code is not None:
            return code
    if args.headless:
        return node.run_headless(config, as_json)
    if args.command == "fleet":
        rigs = fleet.fleet_rigs(config)
        from tui.console.launch import open_fleet

        return open_fleet(rigs)
    from tui.console.launch import open_console

    return open_console(config, attach_only=args.command == "attach")


if __name__ == "__main__":
    sys.exit(main())
