"""``omnitensor service install --user``: the systemd user unit, verified and installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import cli_env, run_cli
from tui.cli.service import exec_start, render_unit

SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
# What systemd-analyze says when it cannot start a manager here (a container with no
# systemd, no user session): the environment's problem, not the unit's.
_NO_MANAGER = ("Failed to initialize manager", "Failed to lookup RuntimeDirectory path")


def _verify(unit: Path, *, user: bool) -> subprocess.CompletedProcess[str]:
    scope = ["--user"] if user else []
    return subprocess.run(
        [SYSTEMD_ANALYZE, *scope, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    if not Path(SYSTEMD_ANALYZE).exists():
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "omnitensor.service"
    # ExecStart must name an existing executable: this interpreter, as the fallback form.
    unit.write_text(render_unit(f"{sys.executable} -m tui"))
    result = _verify(unit, user=True)
    if any(marker in result.stderr for marker in _NO_MANAGER):
        # No user manager (no XDG_RUNTIME_DIR, e.g. root in a container): the system
        # manager's offline check parses the same directives.
        result = _verify(unit, user=False)
        if any(marker in result.stderr for marker in _NO_MANAGER):
            pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()}")
    # verify exits 0 on directives it ignores: any line about our file is a failure.
    about_unit = [line for line in result.stderr.splitlines() if str(unit) in line]
    assert result.returncode == 0, result.stderr
    assert about_unit == []


def test_unit_file_settings() -> None:
    text = render_unit("/opt/omni/bin/omnitensor")
    lines = set(text.splitlines())
    assert "ExecStart=/opt/omni/bin/omnitensor --headless --json" in lines
    assert {"Restart=on-failure", "NoNewPrivileges=yes", "WantedBy=default.target"} <= lines
    assert "@EXEC_START@" not in text


def test_exec_start_quotes_for_systemd(tmp_path: Path) -> None:
    python = tmp_path / "my env" / "bin" / "python"
    line = exec_start(python=str(python), data_dir=tmp_path / "100%")
    assert line == f'"{python}" -m tui --data-dir {tmp_path}/100%%'
    script = tmp_path / "venv" / "bin" / "omnitensor"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert exec_start(python=str(script.parent / "python")) == str(script)


def test_dry_run_prints_the_unit(tmp_path: Path) -> None:
    env = cli_env(XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    result = run_cli("service", "install", "--user", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert "[Service]" in result.stdout and "--headless --json" in result.stdout
    [exec_line] = [line for line in result.stdout.splitlines() if line.startswith("ExecStart=")]
    assert Path(exec_line.removeprefix("ExecStart=").split()[0].strip('"')).is_absolute()
    assert str(tmp_path / "cfg" / "systemd" / "user" / "omnitensor.service") in result.stderr
    assert not (tmp_path / "cfg").exists()  # nothing written


def test_install_writes_refuses_to_clobber_and_forces(tmp_path: Path) -> None:
    env = cli_env(XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    target = tmp_path / "cfg" / "systemd" / "user" / "omnitensor.service"
    first = run_cli("service", "install", "--user", env=env)
    assert first.returncode == 0, first.stderr
    assert f"wrote {target}" in first.stdout
    assert "systemctl --user daemon-reload && systemctl --user enable --now omnitensor" in (
        first.stdout
    )
    installed = target.read_text()
    assert "ExecStart=" in installed and "--headless --json" in installed
    assert target.stat().st_mode & 0o777 == 0o644

    again = run_cli("service", "install", "--user", env=env)
    assert again.returncode == 0 and "already installed" in again.stdout

    # A different unit there (the user's edits) is kept: one line, non-zero.
    target.write_text(installed + "# my edit\n")
    refused = run_cli("service", "install", "--user", env=env)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert target.read_text().endswith("# my edit\n")

    forced = run_cli("service", "install", "--user", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert target.read_text() == installed


def test_install_needs_user_and_carries_the_data_dir(tmp_path: Path) -> None:
    env = cli_env(XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    system = run_cli("service", "install", env=env)
    assert system.returncode == 2 and system.stderr.count("\n") == 1
    assert "--user" in system.stderr
    data_dir = tmp_path / "rig"
    dry = run_cli("service", "install", "--user", "--dry-run", "--data-dir", str(data_dir), env=env)
    assert "--headless --json" in dry.stdout and f"--data-dir {data_dir} " in dry.stdout
