"""Headless mode: the node without a UI, until SIGINT or SIGTERM.

Log lines go to stderr through ``logging``: human lines by default, JSON lines with
``json_logs``. Other processes of the same user reach the node through its control socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from typing import Any, TextIO

from core.config import Config
from core.node.control import ControlServer
from core.node.metrics import serve_metrics
from core.node.service import Node
from core.runtime.localnet import open_node
from core.textsafe import PrintableFormatter

TELEMETRY_SUMMARY_INTERVAL = 60.0


class JsonLineFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, kind, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "kind": getattr(record, "kind", ""),
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(*, json_lines: bool, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    if json_lines:
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(
            PrintableFormatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
    root = logging.getLogger("omnitensor")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def telemetry_summary(node: Node) -> str:
    frame = node.frame
    if frame is None:
        return "telemetry: none yet"
    if not frame.status.available:
        return f"telemetry: no GPU ({frame.status.reason})"
    parts = []
    for gpu in frame.gpus:
        if gpu.error:
            parts.append(f"gpu{gpu.index} error: {gpu.error}")
            continue
        util = "n/a" if gpu.utilization_pct is None else f"{gpu.utilization_pct}%"
        temp = "n/a" if gpu.temperature_c is None else f"{gpu.temperature_c}°C"
        power = "n/a" if gpu.power_w is None else f"{gpu.power_w:.0f}W"
        parts.append(f"gpu{gpu.index} {util} {temp} {power}")
    guard = node.guard_state.summary() if node.guard_state else ""
    return "telemetry: " + ", ".join(parts) + (f"; {guard}" if guard else "")


def _log_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's unhandled errors go to our log (JSON lines stay JSON), not bare stderr.

    A broker connection torn down mid-operation leaves aiomqtt futures nobody awaits any
    more: that is expected at shutdown and during outages, so it is logged at debug level.
    Anything else is a warning with its traceback.
    """
    import aiomqtt

    exc = context.get("exception")
    message = str(context.get("message", "asyncio error"))
    log = logging.getLogger("omnitensor.asyncio")
    # aiomqtt 2.5's disconnect callback also calls .exception() on a connect future that a
    # shutdown cancelled: a CancelledError with nothing lost.
    if isinstance(exc, aiomqtt.MqttError | asyncio.CancelledError):
        log.debug("%s: %r", message, exc)
    else:
        log.warning("%s: %r", message, exc, extra={"kind": "asyncio"}, exc_info=exc)


async def run_headless(
    config: Config, *, nvml: Any | None = None, duration_s: float | None = None
) -> int:
    """Run the node until a stop signal (or ``duration_s``); returns the process exit code."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_log_loop_error)
    stop = asyncio.Event()
    if duration_s is not None:
        loop.call_later(duration_s, stop.set)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log = logging.getLogger("omnitensor.node")
    try:
        async with contextlib.AsyncExitStack() as stack:
            metrics = await serve_metrics(config, stack)
            node = await open_node(config, stack, nvml=nvml)
            if metrics is not None:
                await stack.enter_async_context(metrics.following(node))
            await stack.enter_async_context(ControlServer(node, config.socket_path))
            log.info("control socket %s", config.socket_path)
            next_summary = time.monotonic()
            while not stop.is_set():
                if time.monotonic() >= next_summary:
                    log.info(telemetry_summary(node), extra={"kind": "telemetry"})
                    next_summary = time.monotonic() + TELEMETRY_SUMMARY_INTERVAL
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=next_summary - time.monotonic())
            log.info("stop signal received, shutting down")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
