"""``omnitensor fleet``: the console over every rig listed in ``[[fleet.rigs]]``.

This module reads the rigs and refuses (one line, exit 2) when there are none; the console
itself opens through ``tui.console.launch`` (the command line's one lazy Textual import).
"""

from __future__ import annotations

import argparse

from core.config import Config, default_config_file
from core.errors import ConfigError
from core.fleet import FLEET_EXAMPLE, FleetRig, load_fleet


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    sub.add_parser(
        "fleet",
        parents=[common],
        help="one console over several rigs ([[fleet.rigs]] in the config file)",
    )


def fleet_rigs(config: Config) -> tuple[FleetRig, ...]:
    """The configured rigs; ConfigError (one line: how to add them) when there are none."""
    config_file = config.config_file or default_config_file()
    rigs = load_fleet(config.config_file)
    if not rigs:
        raise ConfigError(f"no rigs configured in {config_file}; add {FLEET_EXAMPLE}")
    return rigs
