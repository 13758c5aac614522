"""Measure the real console in a pseudo-terminal: CPU, terminal bytes, memory, first frame.

Run ``python -m tests.bench.console_bench [--seconds 20]``. It starts ``omnitensor`` (the
real command, on two fake GPUs with the NumPy backend) in a pty of 120x40, reads everything
it writes, and reports for each scenario:

- CPU: the console process's user+system time over the window, as % of one core (psutil);
- terminal output: bytes written to the pty per second;
- resident memory at the end of the window;
- time to first frame: from launch to the header drawn, and to the GPU cards drawn, warm
  (one untimed launch first, then the median of three).

Scenarios: the console running its node in-process, and attached to a headless node (only
the console's own cost), each with telemetry "idle" (one frame an hour: nothing changes) and
at 1 Hz; and attached at 1 Hz with ``SSH_CONNECTION`` set. The baseline: a bare Textual app
(``tests/bench/bare_textual.py``) with the same header, footer and four sparklines fed at
1 Hz; the attached console at 1 Hz should cost no more.

``--pairs N`` measures only that comparison: the attached console at 1 Hz and the baseline,
alternately, N times each (a fresh headless node each time), then the median of each.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
COLUMNS, ROWS = 120, 40
HEADER = "OmniTensor Console"
CARDS = "GPU 1 · NVIDIA GeForce RTX 4090"
BARE = "tests.bench.bare_textual"  # the baseline: a bare Textual app, same sparklines
_ANSI = re.compile(rb"\x1b\[[0-9;?<>=$]*[ -/]*[@-~]|\x1b[P\]^_].*?(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def _env(ssh: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNITENSOR_", "SSH_"))}
    env.update(
        OMNITENSOR_FAKE_GPUS="2",
        OMNITENSOR_BACKEND="numpy",
        TERM="xterm-256color",
        COLORTERM="truecolor",
        PYTHONDONTWRITEBYTECODE="0",
    )
    if ssh:
        env["SSH_CONNECTION"] = "192.0.2.1 50000 192.0.2.2 22"
    return env


def _config(directory: Path, interval: float) -> Path:
    path = directory / f"config-{interval:g}.toml"
    path.write_text(f'telemetry_interval = {interval}\nname = "bench-rig"\n')
    return path


@dataclass
class Console:
    """``omnitensor`` in a pty; a thread drains the pty and counts what it writes."""

    args: list[str]
    env: dict[str, str]
    started: float = 0.0
    written: int = 0
    seen: dict[str, float] = field(default_factory=dict)
    _text: bytes = b""

    def __post_init__(self) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.master = master
        self.lock = threading.Lock()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                *(self.args if self.args[:1] == [BARE] else ["tui", *self.args]),
            ],
            cwd=ROOT,
            env=self.env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter()
            with self.lock:
                self.written += len(chunk)
                if len(self.seen) < 2:
                    # Markers may straddle reads: search the recent text without escapes.
                    self._text = (self._text + chunk)[-262144:]
                    plain = _ANSI.sub(b"", self._text).decode("utf-8", "replace")
                    for marker in (HEADER, CARDS):
                        if marker in plain and marker not in self.seen:
                            self.seen[marker] = now - self.started

    def wait_for(self, marker: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if marker in self.seen:
                    return self.seen[marker]
            if self.proc.poll() is not None:
                raise RuntimeError(f"the console exited {self.proc.returncode}")
            time.sleep(0.005)
        raise TimeoutError(f"{marker!r} never appeared")

    def bytes_written(self) -> int:
        with self.lock:
            return self.written

    def quit(self) -> int:
        os.write(self.master, b"q")
        try:
            # A console that owns an earning node asks before stopping it: say yes.
            code = self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            os.write(self.master, b"y")
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.reader.join(5)
        os.close(self.master)
        return code


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


@dataclass
class Figures:
    scenario: str
    cpu_pct: float
    bytes_per_s: float
    rss_mib: float


def measure(scenario: str, args: list[str], env: dict[str, str], seconds: float) -> Figures:
    console = Console(args, env)
    try:
        console.wait_for(CARDS)
        time.sleep(3.0)  # let start-up work (first snapshot, log history) finish
        proc = psutil.Process(console.proc.pid)
        cpu0, bytes0, t0 = _cpu_seconds(proc), console.bytes_written(), time.perf_counter()
        time.sleep(seconds)
        cpu1, bytes1, t1 = _cpu_seconds(proc), console.bytes_written(), time.perf_counter()
        rss = proc.memory_info().rss
    finally:
        code = console.quit()
    if code != 0:
        raise RuntimeError(f"{scenario}: the console exited {code}")
    wall = t1 - t0
    return Figures(scenario, 100.0 * (cpu1 - cpu0) / wall, (bytes1 - bytes0) / wall, rss / 2**20)


def first_frame(args: list[str], env: dict[str, str], runs: int = 3) -> tuple[float, float]:
    """Median (header drawn, GPU cards drawn) seconds after one untimed warm-up launch."""
    header, cards = [], []
    for run in range(runs + 1):
        console = Console(args, env)
        try:
            h, c = console.wait_for(HEADER), console.wait_for(CARDS)
        finally:
            console.quit()
        if run:
            header.append(h)
            cards.append(c)
    return statistics.median(header), statistics.median(cards)


class Headless:
    """``omnitensor --headless`` for the attached scenarios."""

    def __init__(self, data_dir: Path, config: Path, env: dict[str, str]) -> None:
        self.log = (data_dir.parent / f"{data_dir.name}.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tui",
                "--headless",
                "--data-dir",
                str(data_dir),
                "--config",
                str(config),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not (data_dir / "node.sock").exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the headless node did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()


BARE_SCENARIO = "bare Textual app, 4 sparklines at 1 Hz (baseline)"


def attached(base: Path, config: Path, label: str, seconds: float, *, ssh: bool = False) -> Figures:
    """The console attached to a headless node of its own (started, measured, stopped)."""
    node_dir = base / f"node-{label.replace(' ', '')}-{int(ssh)}-{time.monotonic_ns()}"
    node = Headless(node_dir, config, _env(False))
    try:
        return measure(
            f"attached, telemetry {label}" + (", SSH_CONNECTION set" if ssh else ""),
            ["attach", "--data-dir", str(node_dir)],
            _env(ssh),
            seconds,
        )
    finally:
        node.stop()


def pairs(count: int, seconds: float) -> list[Figures]:
    """The attached console at 1 Hz and the baseline, alternately, ``count`` times each."""
    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="otb-") as tmp:
        base = Path(tmp)
        live = _config(base, 1.0)
        for run in range(count):
            print(f"pair {run + 1}/{count}: load average {os.getloadavg()}", flush=True)
            results.append(attached(base, live, "1 Hz", seconds))
            results.append(measure(BARE_SCENARIO, [BARE], _env(False), seconds))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window")
    parser.add_argument(
        "--pairs", type=int, default=0, help="only attached at 1 Hz vs the baseline, N times each"
    )
    options = parser.parse_args()
    if options.pairs:
        results = pairs(options.pairs, options.seconds)
        _print(results)
        for scenario in sorted({f.scenario for f in results}):
            cpu = [f.cpu_pct for f in results if f.scenario == scenario]
            print(f"median CPU {statistics.median(cpu):.2f}% of a core: {scenario}")
        print(f"load average after: {os.getloadavg()}")
        return 0
    with tempfile.TemporaryDirectory(prefix="otb-") as tmp:
        base = Path(tmp)
        idle, live = _config(base, 3600.0), _config(base, 1.0)
        local = base / "local"
        results = []
        print(f"console in a {COLUMNS}x{ROWS} pty, 2 fake GPUs, {options.seconds:g} s windows")

        ttf = first_frame(["--data-dir", str(local), "--config", str(live)], _env(False))
        for label, config in (("idle", idle), ("1 Hz", live)):
            results.append(
                measure(
                    f"in-process node, telemetry {label}",
                    ["--data-dir", str(local), "--config", str(config)],
                    _env(False),
                    options.seconds,
                )
            )
        for label, config, ssh in (
            ("idle", idle, False),
            ("1 Hz", live, False),
            ("1 Hz", live, True),
        ):
            results.append(attached(base, config, label, options.seconds, ssh=ssh))
        results.append(measure(BARE_SCENARIO, [BARE], _env(False), options.seconds))

    _print(results)
    print(
        f"time to first frame (warm, median of 3): header {ttf[0]:.2f} s, GPU cards {ttf[1]:.2f} s"
    )
    return 0


def _print(results: list[Figures]) -> None:
    print(f"{'scenario':<48} {'CPU % of a core':>15} {'term B/s':>10} {'RSS MiB':>8}")
    for f in results:
        print(f"{f.scenario:<48} {f.cpu_pct:>15.2f} {f.bytes_per_s:>10.0f} {f.rss_mib:>8.1f}")


if __name__ == "__main__":
    sys.exit(main())
