"""``omnitensor service install --user``: the node as a systemd user service.

Writes ``assets/systemd/omnitensor.service`` to ``$XDG_CONFIG_HOME/systemd/user/`` (default
``~/.config/systemd/user/``) with ``ExecStart`` filled in, and prints the ``systemctl``
commands to run; it never runs ``systemctl`` itself. An existing, different unit file is
kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.assets import asset_path
from core.config import Config
from core.errors import ConfigError

UNIT_NAME = "omnitensor.service"
UNIT_ASSET = "systemd/omnitensor.service"
EXEC_PLACEHOLDER = "@EXEC_START@"


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    service = sub.add_parser("service", help="run the node as a systemd user service")
    actions = service.add_subparsers(dest="service_command", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install",
        parents=[common],
        help=f"write the user unit {UNIT_NAME} (then enable it with systemctl --user)",
    )
    install.add_argument(
        "--user", action="store_true", help="a systemd user unit (the only kind supported)"
    )
    install.add_argument(
        "--dry-run", action="store_true", help="print the unit and where it would go; write nothing"
    )
    install.add_argument(
        "--force", action="store_true", help="replace a different unit file already there"
    )


def run(args: argparse.Namespace, config: Config, as_json: bool) -> int | None:
    """Run ``service install``; None when ``args`` names another command."""
    if args.command != "service":
        return None
    if not args.user:
        raise ConfigError(
            "service install: only a systemd user unit is supported; run: "
            "omnitensor service install --user"
        )
    return install(
        exec_start=exec_start(
            data_dir=_explicit(args, "data_dir"), config=_explicit(args, "config")
        ),
        dry_run=args.dry_run,
        force=args.force,
    )


def _explicit(args: argparse.Namespace, name: str) -> Path | None:
    value = getattr(args, name, None)
    return Path(value).expanduser().absolute() if value else None


def user_unit_dir(env: dict[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/systemd/user`` (an absolute XDG_CONFIG_HOME only, as the spec says)."""
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_CONFIG_HOME", "")
    config_home = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return config_home / "systemd" / "user"


def _quote(arg: str) -> str:
    """One ExecStart word: systemd expands ``%`` specifiers and ``$`` variables, and splits
    on blanks unless quoted."""
    word = arg.replace("%", "%%").replace("$", "$$")
    if any(c in word for c in " \t\"'\\"):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def exec_start(
    *, data_dir: Path | None = None, config: Path | None = None, python: str | None = None
) -> str:
    """The command that starts the node: the ``omnitensor`` script beside this Python (a
    venv's bin/), else this Python with ``-m tui``; absolute paths, as systemd wants."""
    interpreter = Path(python or sys.executable).absolute()  # not resolved: keep the venv's
    script = interpreter.parent / "omnitensor"
    words = [str(script)] if os.access(script, os.X_OK) else [str(interpreter), "-m", "tui"]
    if data_dir is not None:
        words += ["--data-dir", str(data_dir)]
    if config is not None:
        words += ["--config", str(config)]
    return " ".join(_quote(word) for word in words)


def render_unit(exec_start_line: str) -> str:
    """The unit file's text with ``ExecStart`` filled in."""
    template = asset_path(UNIT_ASSET).read_text(encoding="utf-8")
    if EXEC_PLACEHOLDER not in template:
        raise ConfigError(f"{asset_path(UNIT_ASSET)}: no {EXEC_PLACEHOLDER} to fill in")
    return template.replace(EXEC_PLACEHOLDER, exec_start_line)


ENABLE_COMMANDS = "systemctl --user daemon-reload && systemctl --user enable --now omnitensor"


def install(*, exec_start: str, dry_run: bool, force: bool, unit_dir: Path | None = None) -> int:
    """Write (or with ``dry_run`` print) the unit; ConfigError when it would clobber one."""
    text = render_unit(exec_start)
    target = (unit_dir or user_unit_dir()) / UNIT_NAME
    if dry_run:
        sys.stdout.write(text)
        print(f"# dry run: would write {target}; then run: {ENABLE_COMMANDS}", file=sys.stderr)
        return 0
    try:
        existing = target.read_text(encoding="utf-8") if target.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{target}: cannot read the unit there ({exc})") from None
    if existing == text:
        print(f"{target} is already installed, unchanged")
    else:
        if existing is not None and not force:
            raise ConfigError(
                f"{target} exists and differs; keep it, or replace it with --force "
                "(see the new one with --dry-run)"
            )
        _write(target, text)
        print(f"wrote {target}")
    print(f"start it now and at login: {ENABLE_COMMANDS}")
    print("follow its log: journalctl --user -u omnitensor -f -o cat")
    print('keep it running after you log out: loginctl enable-linger "$USER"')
    return 0


def _write(target: Path, text: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.chmod(0o644)
        partial.replace(target)  # atomic: systemd never reads half a unit
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write the unit ({exc.strerror or exc})") from None
