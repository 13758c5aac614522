"""Fixtures for the console's tests: real nodes on fake GPUs, and ways to wait on the app.

Tests drive the real app (``make_app``) against a real in-process ``Node`` and wait on the
messages the app receives (``message_hook``) and on its command workers, not on sleeps.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from hashlib import sha256
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input

from core.api.commands import GetLeaderboard, Request
from core.api.events import NodeEvent
from core.api.network import BoardEntry, LeaderboardPage
from core.api.views import NodeSnapshot
from core.config import Config, load_config
from core.identity import KEY_FILE_NAME, Identity
from core.node.fake_nvml import FakeNvml
from core.node.local_client import LocalNodeClient
from core.node.service import Node
from tui.console.app import OmniTensorApp, make_app

M = TypeVar("M", bound=Message)
T = TypeVar("T")
R = TypeVar("R")

NODE_NAME = "rig-01"
# Generous: a test that waits this long has failed; it only bounds how long it hangs.
WAIT_SECONDS = 15.0
# A fixed key: the node id (shown on the dashboard) is the same on every run.
FIXED_KEY = bytes(range(32))


@pytest.fixture(autouse=True)
def no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blinking cursor makes screenshots depend on timing."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda _self: None)


@pytest.fixture(autouse=True)
def not_over_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own SSH session must not change what tests see."""
    monkeypatch.delenv("SSH_CONNECTION", raising=False)


def write_fixed_identity(data_dir: Path) -> str:
    """Put a fixed node key in ``data_dir``; the node id."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    identity = Identity(Ed25519PrivateKey.from_private_bytes(FIXED_KEY))
    identity.save(data_dir / KEY_FILE_NAME)
    return identity.node_id


def node_config(data_dir: Path, **overrides: Any) -> Config:
    """A config for a test node named ``rig-01``.

    Its model dir names nothing, so what the console shows does not depend on whether this
    machine has the embedding model installed (the snapshots say "no model").
    """
    fields = {"data_dir": str(data_dir), "name": NODE_NAME, **overrides}
    return load_config({"model_dir": str(data_dir / "no-model"), **fields})


@pytest.fixture
def gpus() -> FakeNvml:
    """Two fake cards (an RTX 3080 and an RTX 4090)."""
    return FakeNvml.with_gpus(2)


@pytest.fixture
async def node(data_dir: Path, gpus: FakeNvml) -> AsyncIterator[Node]:
    """A real node on two fake GPUs, telemetry every 0.25 s."""
    async with Node(node_config(data_dir, telemetry_interval=0.25), nvml=gpus) as running:
        yield running


@pytest.fixture
async def no_gpu_node(data_dir: Path) -> AsyncIterator[Node]:
    """A real node on a machine without the NVIDIA driver."""
    async with Node(node_config(data_dir), nvml=FakeNvml.missing_library()) as running:
        yield running


class Messages:
    """A ``message_hook`` that records the app's messages and lets a test wait for one."""

    def __init__(self) -> None:
        self.seen: list[Message] = []
        self._waiters: list[tuple[Callable[[Message], bool], asyncio.Future[Message]]] = []

    def __call__(self, message: Message) -> None:
        self.seen.append(message)
        for test, future in list(self._waiters):
            if not future.done() and test(message):
                future.set_result(message)

    def of(self, kind: type[M]) -> list[M]:
        """Every recorded message of ``kind``."""
        return [m for m in self.seen if isinstance(m, kind)]

    async def wait(
        self,
        kind: type[M],
        where: Callable[[M], bool] = lambda _m: True,
        *,
        new: bool = False,
    ) -> M:
        """The first message of ``kind`` matching ``where`` (already seen, unless ``new``)."""

        def test(message: Message) -> bool:
            return isinstance(message, kind) and where(message)

        if not new:
            for message in self.seen:
                if test(message):
                    assert isinstance(message, kind)
                    return message
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiters.append((test, future))
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                found = await future
        finally:
            self._waiters = [w for w in self._waiters if w[1] is not future]
        assert isinstance(found, kind)
        return found


@pytest.fixture
def messages() -> Messages:
    """Pass as ``app.run_test(message_hook=messages)``."""
    return Messages()


def console(node: Node, **kwargs: Any) -> OmniTensorApp:
    """The console over ``node`` in this process."""
    return make_app(LocalNodeClient(node), ssh=False, **kwargs)


async def wait_for_commands(app: OmniTensorApp) -> None:
    """Wait for the node commands the app is running (not its long-lived loops)."""
    workers = [w for w in app.workers if w.group == "commands"]
    if workers:  # an empty list would mean "every worker" to wait_for_complete
        await app.workers.wait_for_complete(workers)


async def settle(pilot: Pilot[Any], until: Callable[[], bool], *, tries: int = 200) -> None:
    """Let the app process messages until ``until()`` holds (bounded)."""
    for _ in range(tries):
        if until():
            return
        await pilot.pause(0.02)
    assert until(), "the app never reached the expected state"


def screen_text(app: OmniTensorApp) -> str:
    """What the terminal shows now, as plain text."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


class ScriptedNetwork(LocalNodeClient):
    """A real node's client plus the network's sections and commands, scripted.

    This stands in for the coordinator's answers (typed views, as the node decodes them)
    so the console's renderings of every section and the commands its keys send are tested
    without a network. ``calls`` records every command sent.
    """

    def __init__(
        self,
        node: Node,
        sections: dict[str, Any],
        board: Callable[[GetLeaderboard], LeaderboardPage] | None = None,
    ):
        super().__init__(node)
        self.sections = sections
        self.board = board
        self.calls: list[Request[Any]] = []
        self.handlers: dict[type[Request[Any]], Callable[[Any], Awaitable[Any]]] = {}

    async def snapshot(self) -> NodeSnapshot:
        return msgspec.structs.replace(await super().snapshot(), **self.sections)

    async def command(self, request: Request[R]) -> R:
        self.calls.append(request)
        if isinstance(request, GetLeaderboard) and self.board is not None:
            page: R = self.board(request)  # type: ignore[assignment]
            return page
        handler = self.handlers.get(type(request))
        if handler is not None:
            result: R = await handler(request)
            return result
        return await super().command(request)


def synthetic_board(
    total: int, own_rank: int, own_id: str
) -> Callable[[GetLeaderboard], LeaderboardPage]:
    """A ``leaderboard`` answer for a board of ``total`` nodes, computed per page."""

    def page(request: GetLeaderboard) -> LeaderboardPage:
        offset, limit = request.offset or 0, request.limit or 10
        entries = [
            BoardEntry(
                rank=rank,
                node_id=own_id if rank == own_rank else sha256(b"%d" % rank).hexdigest(),
                name=NODE_NAME if rank == own_rank else f"node-{rank}",
                amount=(total - rank + 1) * 1_000 * 10**9 + 5 * 10**8,
            )
            for rank in range(offset + 1, min(total, offset + limit) + 1)
        ]
        return LeaderboardPage(
            category=request.category or "gpu-contributors",
            season="2026-Q4",
            total=total,
            own_rank=own_rank,
            own_amount=(total - own_rank + 1) * 1_000 * 10**9 + 5 * 10**8,
            entries=tuple(entries),
        )

    return page


class ThreadedNode:
    """A node on its own event loop in a thread.

    ``snap_compare`` runs the app with ``App.run()``, which makes a new event loop, so the
    node cannot live in the test's loop; the app reaches it through ``client()`` as it
    would reach a node in another process.
    """

    def __init__(self, config: Config, nvml: FakeNvml) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="node-loop", daemon=True)
        self.node = Node(config, nvml=nvml)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the node's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> ThreadedNode:
        self.thread.start()
        self.call(self.node.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self.node.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def client(self) -> CrossLoopClient:
        """A ``NodeAPI`` usable from another event loop."""
        return CrossLoopClient(self)


class CrossLoopClient:
    """``NodeAPI`` over a ``ThreadedNode``: each call runs on the node's loop."""

    def __init__(self, threaded: ThreadedNode) -> None:
        self._threaded = threaded

    async def _on_node(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._threaded.loop)
        return await asyncio.wrap_future(future)

    async def snapshot(self) -> NodeSnapshot:
        return await self._on_node(self._threaded.node.snapshot())

    async def command(self, request: Request[R]) -> R:
        return await self._on_node(self._threaded.node.command(request))

    async def events(self) -> AsyncIterator[NodeEvent]:
        here = asyncio.get_running_loop()
        queue: asyncio.Queue[NodeEvent] = asyncio.Queue()
        node = self._threaded.node

        async def forward() -> None:
            async with node.subscribe() as events:
                while True:
                    event = await events.get()
                    if here.is_closed():
                        return
                    here.call_soon_threadsafe(queue.put_nowait, event)

        forwarder = asyncio.run_coroutine_threadsafe(forward(), self._threaded.loop)
        try:
            while True:
                yield await queue.get()
        finally:
            forwarder.cancel()

    async def close(self) -> None:
        return None


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """``time.time()`` stands still (2026-01-15 12:00 UTC), in every thread."""
    import time

    frozen = 1_768_478_400.0
    monkeypatch.setattr(time, "time", lambda: frozen)
    yield frozen


def snapshot_node(data_dir: Path, nvml: FakeNvml) -> ThreadedNode:
    """A deterministic node for screenshots: fixed key, name, readings and device name."""
    write_fixed_identity(data_dir)
    # One frame only: telemetry would otherwise keep arriving while the screenshot is taken.
    threaded = ThreadedNode(node_config(data_dir, telemetry_interval=3600.0), nvml)
    return threaded


def fixed_gpus() -> FakeNvml:
    """Two fake cards whose readings never change (the fake's clock stands still)."""
    return FakeNvml.with_gpus(2, clock=lambda: 7.0)
