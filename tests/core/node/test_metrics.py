"""Prometheus metrics: a real node on fake GPUs, scraped over HTTP and parsed."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from core import __version__
from core.config import load_config
from core.errors import ConfigError
from core.node.fake_nvml import FakeNvml
from core.node.metrics import MetricsServer
from core.node.service import Node
from core.node.store import ReceivedUnit
from tests.helpers.broker import free_port
from tests.helpers.cli import HeadlessNode, cli_env, run_cli

Samples = dict[str, list[Sample]]


def _fetch(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


def scrape(url: str) -> Samples:
    """Every sample of ``url``'s metrics, by sample name (blocking: run it in a thread)."""
    _, text = _fetch(url)
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


async def scrape_until(url: str, check: Callable[[Samples], bool], within: float = 10) -> Samples:
    deadline = time.monotonic() + within
    while True:
        samples = await asyncio.to_thread(scrape, url)
        if check(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.05)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The one sample of ``name`` with ``labels``; None when there is none (yet)."""
    matches = [s for s in samples.get(name, []) if labels.items() <= s.labels.items()]
    assert len(matches) <= 1, matches
    return matches[0].value if matches else None


async def _add_unit(node: Node, task_id: str) -> None:
    assert node.store is not None
    now = time.time()
    unit = ReceivedUnit(task_id, "work", "00" * 16, 8, 8, 8, 8, now, now + 60)
    assert await node.store.add_unit(unit)
    await node.store.advance_unit(task_id, "committed", "work/commit", b"{}", root="ab" * 32)


async def test_node_metrics_over_http(data_dir: Path) -> None:
    port = free_port()
    config = load_config(
        {"data_dir": str(data_dir), "name": "alice", "telemetry_interval": 0.25},
        env={"OMNITENSOR_METRICS_LISTEN": f"127.0.0.1:{port}"},
    )
    assert config.metrics_listen == f"127.0.0.1:{port}"
    nvml = FakeNvml.with_gpus(2)
    nvml.set_temperature(1, 77)
    async with (
        MetricsServer(config.metrics_listen) as metrics,
        Node(config, nvml=nvml) as node,
        metrics.following(node),
    ):
        assert node.store is not None
        for task_id in ("t1", "t2", "t3"):
            await _add_unit(node, task_id)
        await node.store.apply_receipt(
            "t1", accepted=True, reason="", flops=1, credited=2 * 10**9, entry_id=1
        )
        await node.store.apply_receipt(
            "t2", accepted=False, reason="bad root", flops=0, credited=0, entry_id=None
        )
        # The counters reach the metrics with the next telemetry frame: wait for all of
        # them (a frame between the units and their receipts shows only the first).
        samples = await scrape_until(
            metrics.url,
            lambda s: (
                value(s, "omnitensor_work_units_total", state="submitted") == 3
                and value(s, "omnitensor_work_units_total", state="acknowledged") == 2
            ),
        )
        content_type, _ = await asyncio.to_thread(_fetch, metrics.url)
        node_id = node.node_id

    assert content_type.startswith("text/plain")
    temps = {s.labels["gpu"]: s for s in samples["omnitensor_gpu_temperature_celsius"]}
    assert set(temps) == {"0", "1"}
    assert temps["1"].value == 77
    assert temps["0"].labels["name"] == "NVIDIA GeForce RTX 3080"
    assert temps["0"].labels["uuid"].startswith("GPU-")
    assert temps["0"].labels["uuid"] != temps["1"].labels["uuid"]
    for name in (
        "omnitensor_gpu_utilization_ratio",
        "omnitensor_gpu_memory_used_bytes",
        "omnitensor_gpu_memory_total_bytes",
        "omnitensor_gpu_power_watts",
        "omnitensor_gpu_clock_sm_hertz",
    ):
        assert {s.labels["gpu"] for s in samples[name]} == {"0", "1"}, name
    assert all(0 <= s.value <= 1 for s in samples["omnitensor_gpu_utilization_ratio"])
    assert (value(samples, "omnitensor_gpu_clock_sm_hertz", gpu="0") or 0) > 1e8  # MHz made Hz
    assert (value(samples, "omnitensor_gpu_memory_total_bytes", gpu="0") or 0) > 2**30

    assert value(samples, "omnitensor_work_units_total", state="submitted") == 3
    assert value(samples, "omnitensor_work_units_total", state="acknowledged") == 2
    assert value(samples, "omnitensor_work_units_total", state="rejected") == 1
    assert value(samples, "omnitensor_outbox_pending") == 1
    assert value(samples, "omnitensor_work_credited_omnit_total") == 2.0
    assert [s.value for s in samples["omnitensor_guard_paused"]] == [0.0, 0.0]
    assert value(samples, "omnitensor_link_up") == 0  # on no network
    # No wallet known (no coordinator answered): no balance, rather than a made-up 0.
    assert "omnitensor_balance_omnit" not in samples
    [info] = samples["omnitensor_info"]
    assert info.value == 1
    assert info.labels == {
        "version": __version__,
        "node_id": node_id,
        "name": "alice",
        "backend": "numpy",
    }
    # Shut down: the port is free again (SO_REUSEADDR: past the scrapes' TIME_WAIT).
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


async def test_port_in_use_is_one_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            async with MetricsServer(f"127.0.0.1:{port}"):
                pass
    message = str(info.value)
    assert f"metrics listen 127.0.0.1:{port}" in message and "\n" not in message


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ('"127.0.0.1"', "needs a port"),
        ('"127.0.0.1:99999"', "needs a port"),
        ('"::1:9400"', "IPv6 host in brackets"),
        ('"bad host:9400"', "bad host"),
        ("true", "is not HOST:PORT"),
    ],
)
def test_bad_listen_value_refused(tmp_path: Path, listen: str, expected: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[metrics]\nlisten = {listen}\n")
    with pytest.raises(ConfigError) as info:
        load_config({"config_file": str(path)})
    message = str(info.value)
    assert expected in message and "metrics_listen" in message and str(path) in message
    assert "\n" not in message


def test_listen_forms(tmp_path: Path) -> None:
    def listen(value: str) -> str | None:
        return load_config(env={"OMNITENSOR_METRICS_LISTEN": value}).metrics_listen

    assert load_config().metrics_listen is None
    assert listen("9400") == "127.0.0.1:9400"  # a bare port: the loopback
    assert listen("[::1]:9400") == "[::1]:9400"
    assert listen("localhost:9400") == "localhost:9400"
    path = tmp_path / "c.toml"
    path.write_text("[metrics]\nport = 1\n")
    with pytest.raises(ConfigError, match=r"\[metrics\]: unknown setting 'port'"):
        load_config({"config_file": str(path)})


def test_headless_serves_metrics_and_refuses_a_bad_listen(data_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    env = cli_env(OMNITENSOR_FAKE_GPUS="2", OMNITENSOR_METRICS_LISTEN=f"127.0.0.1:{port}")
    node = HeadlessNode("--json", "--data-dir", str(data_dir), env=env, log_path=tmp_path / "n.log")
    try:
        node.wait_for_socket(data_dir / "node.sock")
        samples = asyncio.run(
            scrape_until(url, lambda s: value(s, "omnitensor_link_up") == 1, within=20)
        )
        # The headless node is on its local network: linked, with both GPUs.
        assert value(samples, "omnitensor_link_up") == 1
        temps = samples["omnitensor_gpu_temperature_celsius"]
        assert sorted(s.labels["gpu"] for s in temps) == ["0", "1"]
        assert samples["omnitensor_info"][0].labels["backend"] == "numpy"
        # A second node wanting the same port stops with one line (another data dir).
        second = run_cli("--headless", "--data-dir", str(tmp_path / "other"), env=env)
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1 and "metrics listen" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        assert node.stop() == 0, node.output()
    assert f'"message": "metrics on {url}"' in node.output()

    bad = run_cli(
        "--headless",
        "--data-dir",
        str(data_dir),
        env=cli_env(OMNITENSOR_METRICS_LISTEN="127.0.0.1:http"),
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert "metrics_listen" in bad.stderr and "Traceback" not in bad.stderr
