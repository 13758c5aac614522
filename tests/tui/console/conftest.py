"""Fixtures for the console's tests: real nodes on fake GPUs, and ways to wait on the app.

Tests drive the real app (``make_app``) against a real in-process ``Node`` and wait on the
messages the app receives (``message_hook``) and on its command workers, not on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input

from core.api.commands import Request
from core.api.events import GameEvent, NodeEvent
from core.api.views import NodeSnapshot
from core.config import Config, load_config
from core.errors import CommandError
from core.identity import KEY_FILE_NAME, Identity
from core.node.fake_nvml import FakeNvml
from core.node.local_client import LocalNodeClient
from core.node.service import Node
from tui.console.app import OmniTensorApp, make_app

if TYPE_CHECKING:
    from core.node.link import NetworkLink

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


RECORDED = Path(__file__).parent / "data" / "coordinator_answers.json"
# Where the replayed node says it is connected (the coordinator is a recording).
REPLAY_BROKER = "mqtt://coordinator.example:1883"


def _shifted(value: Any, by: float) -> Any:
    """``value`` with every timestamp (``ts`` and ``*_ts`` numbers) moved by ``by`` seconds."""
    if isinstance(value, dict):
        return {
            k: v + by
            if (k == "ts" or k.endswith("_ts")) and isinstance(v, int | float)
            else _shifted(v, by)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_shifted(v, by) for v in value]
    return value


class ReplayedCoordinator:
    """The real coordinator's answers, recorded by ``record_network.py``, replayed to a node.

    ``attached(node)`` gives a real node a network link whose requests this answers: the node
    asks through its own request path (its game cache, its command handlers) and decodes
    every answer as it decodes a live one, and the console reads the node as always. Times
    move by the age of the recording, so "5h left" stays 5h. A request with no recorded
    answer fails loudly; ``leaderboard`` pages are cut from the recorded board as the
    coordinator cuts them, or made by an ``overrides`` entry. ``calls`` records every request.
    """

    def __init__(self, path: Path = RECORDED) -> None:
        raw = json.loads(path.read_text(encoding="utf-8"))
        self.recorded_at: float = raw["recorded_at"]
        self.node_id: str = raw["node_id"]
        self.shift = time.time() - self.recorded_at
        self.answers: list[dict[str, Any]] = _shifted(raw["answers"], self.shift)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.overrides: dict[str, Callable[[dict[str, Any]], Any]] = {}

    def result(self, method: str, **params: Any) -> Any:
        """The recorded result of ``method`` with ``params`` (a test's expectations)."""
        answer = self._answer(method, params)
        if answer is None or "result" not in answer:
            raise KeyError(f"no recorded result for {method} {params}")
        return copy.deepcopy(answer["result"])

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        for answer in self.answers:
            if answer["method"] == method and answer["params"] == params:
                return answer
        return None

    async def request(self, method: str, params: dict[str, Any], wait_s: float = 10.0) -> Any:
        """``NetworkLink.request``, answered from the recording."""
        params = {k: v for k, v in params.items() if v is not None}  # as the link sends them
        self.calls.append((method, params))
        if method in self.overrides:
            return self.overrides[method](params)
        answer = self._answer(method, params)
        if answer is None and method == "leaderboard":
            return self._page(params)
        if answer is None:
            raise CommandError(
                f"no recorded answer for {method} {params}: add it to "
                "tests/tui/console/record_network.py and re-record"
            )
        if "error" in answer:
            raise CommandError(answer["error"])
        return copy.deepcopy(answer["result"])

    def _page(self, params: dict[str, Any]) -> Any:
        """A page of a recorded board, cut by offset and limit."""
        category = params.get("category", "gpu-contributors")
        board = self.result("leaderboard", category=category, offset=0, limit=100)
        assert board["total"] == len(board["entries"]), "record the whole board"
        offset, limit = params.get("offset", 0), params.get("limit", 10)
        return {**board, "entries": board["entries"][offset : offset + limit]}

    @contextlib.asynccontextmanager
    async def attached(self, node: Node) -> AsyncIterator[NetworkLink]:
        """Put ``node`` on a link to this recording (connected) until the context exits."""
        from core.node.game_cache import GameCache
        from core.node.link import NetworkLink

        refreshed = asyncio.Event()

        def changed() -> None:
            refreshed.set()
            node.publish(GameEvent())

        link = NetworkLink(node, REPLAY_BROKER, mode="remote")
        link.request = self.request  # type: ignore[method-assign]
        link.game = GameCache(self.request, lambda: True, changed)
        link.state, link.coordinator_online = "connected", True
        node.link = link
        refresher = asyncio.create_task(link.game.run(), name="replay.game")
        try:
            link.game.refresh_soon()
            await asyncio.wait_for(refreshed.wait(), WAIT_SECONDS)
            game = link.game
            views = (game.wallet, game.quests, game.season, game.multipliers)
            assert None not in views, f"a recorded answer did not decode: {views}"
            yield link
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            node.link = None


@pytest.fixture
def replay() -> ReplayedCoordinator:
    """The real coordinator's recorded answers (``data/coordinator_answers.json``)."""
    return ReplayedCoordinator()


@pytest.fixture
async def networked_node(
    data_dir: Path, gpus: FakeNvml, replay: ReplayedCoordinator
) -> AsyncIterator[Node]:
    """A real node (the recording's key, two fake GPUs) on the replayed coordinator."""
    write_fixed_identity(data_dir)
    async with Node(node_config(data_dir, telemetry_interval=0.25), nvml=gpus) as running:
        assert running.node_id == replay.node_id, "the recording is of the fixed key's node"
        async with replay.attached(running):
            yield running


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
