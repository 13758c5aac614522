"""The node's link to the network: one signed session, the pinned coordinator, requests.

The link wires the node's parts to its session on the broker: tasks go to the ``Worker``,
receipts settle the ``Outbox``, retained network state refreshes the ``GameCache``, and
answers complete the node's requests to the coordinator. While offline the node keeps
working; what it produced waits in the outbox.

The coordinator's key is pinned: from the config (``--coordinator-key``), else trusted on
first use from ``coordinator/presence`` and stored in the data dir with one warning. A
different key later is refused loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

import aiomqtt

from core.api.events import GameEvent, LinkEvent, LogLevel
from core.api.views import LinkState, LinkView, NetworkMode
from core.errors import CommandError
from core.identity import short_id
from core.node.context import NodeContext
from core.node.game_cache import GameCache
from core.node.inference_worker import InferenceWorker
from core.node.outbox import Outbox
from core.node.pinning import CoordinatorPin
from core.node.work_receipts import apply_work_receipt, route_challenge
from core.node.worker import Worker
from core.protocol import (
    DEFAULT_TOPICS,
    Challenge,
    Hello,
    InboundFilter,
    InferTask,
    Leaderboard,
    Message,
    MultiplierEvents,
    Presence,
    ProposalTally,
    QualityRound,
    QuestBoard,
    Receipt,
    Request,
    Response,
    RevealCall,
    SeasonInfo,
    SequenceCounter,
    TaskUnit,
)
from core.protocol.fields import MAX_WORKERS
from core.textsafe import printable, redact_url
from core.transport.mqtt import client_id_for, parse_broker_url
from core.transport.session import NotConnected, PeerSession, SessionSettings

log = logging.getLogger("omnitensor.link")

REQUEST_TIMEOUT_S = 10.0
HEARTBEAT_S = 60.0  # the hello is re-sent this often: the coordinator's sign of life
MARKS_EVERY_S = 5.0  # replay marks saved this often (and at the end)


class NetworkLink:
    """Owned by a ``Node``; ``run()`` keeps it connected until cancelled."""

    def __init__(
        self,
        node: NodeContext,
        url: str,
        *,
        mode: NetworkMode = "remote",
        resend_interval: float = 30.0,
    ) -> None:
        self.node = node
        self.url = url
        # Shown in the snapshot and the log: never the credentials a URL may carry.
        self.display_url = redact_url(parse_broker_url(url).url)
        self.mode = mode  # "local" (the embedded local network) or "remote"
        self.resend_interval = resend_interval
        self.state: LinkState = "connecting"
        self.closing = False
        self.since_ts = time.time()
        self.coordinator_online: bool | None = None
        # While offline: the last connection error, when the next attempt is due, and how
        # many attempts failed since the last good connection (0 while connected).
        self.reason = ""
        self.retry_ts: float | None = None
        self.failures = 0
        self._pin: CoordinatorPin | None = None
        self._filter = InboundFilter()
        self._requests: dict[str, asyncio.Future[Response]] = {}
        self._session: PeerSession | None = None
        self._saved_marks: dict[tuple[str, str], int] = {}
        self.game = GameCache(self.request, self._is_up, lambda: node.publish(GameEvent()))
        self.outbox: Outbox | None = None
        self.workers: list[Worker] = []  # one per device
        self.inference = InferenceWorker(node, self._publish)

    # -- lifecycle -----------------------------------------------------------------------

    async def prepare(self) -> None:
        """Load the pinned coordinator key and the sequence counter (before run)."""
        store, identity = self.node.store, self.node.identity
        assert store is not None and identity is not None
        self._pin = CoordinatorPin(
            store, self.node.config.broker, local=self.mode == "local", say=self._say
        )
        await self._pin.load()
        # Replay protection survives restarts: marks are loaded here, saved as they move.
        self._saved_marks = await store.load_high_water()
        self._filter = InboundFilter(
            coordinator_ids={self._pin.key} if self._pin.key else (),
            load_high_water=lambda sender, topic: self._saved_marks.get((sender, topic), 0),
        )
        seqs = await asyncio.to_thread(SequenceCounter, self.node.config.data_dir / "seq")
        node_id = identity.node_id
        self._session = PeerSession(
            SessionSettings(
                url=self.url,
                broker=self.node.config.broker,
                client_id=client_id_for(self.node.config.data_dir, "node"),
                presence_topic=DEFAULT_TOPICS.node_presence(node_id),
                subscriptions=DEFAULT_TOPICS.node_subscriptions(node_id),
            ),
            identity,
            seqs,
            on_message=self._on_message,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
        )
        self.outbox = Outbox(
            store, self._session.publish_raw, self._is_up, resend_interval=self.resend_interval
        )
        self.workers = [
            Worker(self.node, seqs, self.outbox.flush_soon, index=device.index)
            for device in self.node.devices[:MAX_WORKERS]
        ]
        for worker in self.workers:
            await worker.resume()

    async def run(self) -> None:
        """Connect, reconnect with backoff and jitter, and work, until ``close()``."""
        await self.prepare()
        assert self._session is not None and self.outbox is not None
        if self.closing:
            self._session.close()
        # These live as long as the link, not a connection; the outbox waits for one.
        try:
            await self._session.run_with(
                {
                    **{f"link.work.{w.index}": w.run() for w in self.workers},
                    "link.outbox": self.outbox.run(),
                    "link.game": self.game.run(),
                    "link.heartbeat": self._heartbeat_loop(),
                    "link.inference": self.inference.run(),
                }
            )
        finally:
            self.inference.close()
            with contextlib.suppress(Exception):
                await self.save_marks()

    async def _heartbeat_loop(self) -> None:
        """Re-send the hello every minute (the coordinator's sign of life); save marks."""
        last_hello = time.monotonic()
        while True:
            await asyncio.sleep(MARKS_EVERY_S)
            try:
                await self.save_marks()
                if time.monotonic() - last_hello >= HEARTBEAT_S and self._is_up():
                    last_hello = time.monotonic()
                    await self._publish_hello()
            except (aiomqtt.MqttError, CommandError):
                pass  # offline: the next connection says hello anyway
            except Exception:
                log.exception("heartbeat failed")

    async def save_marks(self) -> None:
        """Store the replay high-water marks that moved since the last save."""
        store = self.node.store
        if store is None:
            return
        moved = {
            key: seq
            for key, seq in self._filter.high_water.items()
            if self._saved_marks.get(key, 0) < seq
        }
        await store.save_high_water(moved)
        self._saved_marks.update(moved)

    def close(self) -> None:
        """Ask ``run()`` to end; the caller then cancels its task."""
        self.closing = True
        if self._session is not None:
            self._session.close()

    def _is_up(self) -> bool:
        return self._session is not None and self._session.is_up

    def _set_state(self, state: LinkState) -> None:
        self.state = state
        self.since_ts = time.time()
        self.node.publish(LinkEvent(link=self.view()))

    def view(self) -> LinkView:
        return LinkView(
            mode=self.mode,
            broker=self.display_url,
            state=self.state,
            since_ts=self.since_ts,
            coordinator=self.pinned_key,
            coordinator_online=self.coordinator_online,
            reason=self.reason,
            retry_ts=self.retry_ts,
        )

    async def _on_connected(self) -> None:
        assert self.outbox is not None
        await self._publish_hello()
        self.reason, self.retry_ts, self.failures = "", None, 0
        self._set_state("connected")
        await self.node.emit_log("info", "link", f"connected to {self.display_url}")
        self.outbox.flush_soon()
        self.game.refresh_soon()

    async def _on_disconnected(self, exc: BaseException, delay: float) -> None:
        self.reason = printable(str(exc) or type(exc).__name__, 200)
        self.retry_ts = time.time() + delay
        self.failures += 1
        if isinstance(exc, aiomqtt.MqttError):
            if self.state != "offline":
                self._set_state("offline")
                await self.node.emit_log(
                    "warning", "link", f"offline: broker {self.display_url} ({exc})"
                )
            else:  # still offline: the view's reason and next retry moved
                self.node.publish(LinkEvent(link=self.view()))
            return
        self._set_state("offline")
        await self.node.emit_log("error", "link", f"network session failed: {exc}")

    async def _publish(
        self, topic: str, type_name: str, data: Any, *, retain: bool = False
    ) -> None:
        if self._session is None:
            raise CommandError("offline: not connected to the network")
        try:
            await self._session.publish(topic, type_name, data, retain=retain)
        except NotConnected:
            raise CommandError("offline: not connected to the network") from None

    # -- what the node asks of the network -----------------------------------------------

    def refresh_soon(self) -> None:
        self.game.refresh_soon()

    async def request_benchmark_unit(self) -> None:
        """Ask for a benchmark unit: benchmark quests progress once the coordinator verifies it."""
        await self.request("bench.challenge", {})

    async def announce(self) -> None:
        """Re-send this node's hello (after a benchmark changed its capability)."""
        if self._is_up():
            with contextlib.suppress(aiomqtt.MqttError, CommandError):
                await self._publish_hello()

    async def _publish_hello(self) -> None:
        store = self.node.store
        assert store is not None
        last = await store.last_benchmark()
        # The local benchmark's figure, for display: the coordinator measures its own.
        tflops = (
            float(last.result.get("gemm", {}).get("fp32", {}).get("tflops", 0.0)) if last else 0.0
        )
        frame = self.node.frame
        gpus = [g.name or "?" for g in frame.gpus] if frame else []
        hello = Hello(
            name=self.node.display_name,
            version="0.1.0",
            backend=self.node.backend_name,
            device=(self.node.backend_device or "unknown")[:512],
            gpus=[g[:512] for g in gpus[:64]],
            claimed_tflops=max(0.0, tflops),
            workers=min(len(self.workers), MAX_WORKERS),
            models=await asyncio.to_thread(self.inference.models),
        )
        await self._publish(
            DEFAULT_TOPICS.node_hello(self.node.node_id), Hello.TYPE, hello, retain=True
        )

    async def request(
        self, method: str, params: dict[str, Any], wait_s: float = REQUEST_TIMEOUT_S
    ) -> Any:
        """Ask the coordinator; raises CommandError when offline, refused or timed out."""
        if not self._is_up():
            since = time.strftime("%H:%M:%S", time.localtime(self.since_ts))
            raise CommandError(f"offline since {since}: cannot reach the network")
        request_id = secrets.token_hex(8)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            await self._publish(
                DEFAULT_TOPICS.node_request(self.node.node_id),
                Request.TYPE,
                Request(request_id=request_id, method=method, params=clean),
            )
            response = await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            raise CommandError(
                f"the coordinator did not answer {method} within {wait_s:g}s"
            ) from None
        finally:
            self._requests.pop(request_id, None)
        if not response.ok:
            raise CommandError(response.error or f"{method} refused")
        return response.result_as(object)

    # -- inbound -------------------------------------------------------------------------

    async def _on_message(self, message: Message, topic: str, retained: bool) -> None:
        if topic == DEFAULT_TOPICS.coordinator_presence and not await self._check_pin(message):
            return
        if self._filter.accept(message, topic=topic, retained=retained) is not None:
            return
        await self._dispatch(message, topic)

    async def _check_pin(self, message: Message) -> bool:
        """Pin the coordinator on first use (when allowed); refuse any other key afterwards."""
        if self._pin is None or not await self._pin.admit(message.sender):
            return False
        self._filter.coordinator_ids = frozenset({message.sender})
        return True

    async def _say(self, level: LogLevel, message: str) -> None:
        await self.node.emit_log(level, "link", message)

    @property
    def pinned_key(self) -> str | None:
        return self._pin.key if self._pin is not None else None

    async def _dispatch(self, message: Message, topic: str) -> None:
        assert self.outbox is not None
        data = message.data
        recipient = getattr(data, "recipient", None)
        if recipient is not None and recipient != self.node.node_id:
            # Signed by the coordinator, but for another node: never act on it.
            log.warning("dropped %s for another node (%s)", message.type, short_id(recipient))
            return
        if isinstance(data, TaskUnit):
            if data.worker >= len(self.workers):
                await self.node.emit_log(
                    "warning",
                    "work",
                    f"unit {data.task_id} refused: for device {data.worker}, this node has "
                    f"{len(self.workers)}",
                )
            else:
                await self.workers[data.worker].accept(data)
        elif isinstance(data, Challenge):
            await route_challenge(self.node, self.workers, data)
        elif isinstance(data, InferTask | QualityRound):
            await self.inference.accept(data)
        elif isinstance(data, RevealCall):
            await self.inference.reveal(data)
        elif isinstance(data, Receipt):
            if await self.inference.on_receipt(data):
                self.game.refresh_soon()  # a fee share or a slash: the wallet changed
            elif await apply_work_receipt(self.node, self.workers, data):
                self.game.refresh_soon()
        elif isinstance(data, Response):
            future = self._requests.pop(data.request_id, None)
            if future is not None and not future.done():
                future.set_result(data)
        elif isinstance(data, Leaderboard):
            self.game.on_leaderboard(data)
        elif isinstance(data, ProposalTally):
            self.game.on_proposal(data)
        elif isinstance(data, MultiplierEvents | QuestBoard | SeasonInfo):
            # Network state changed (a new event, a new period): refresh this node's views.
            self.game.refresh_soon()
        elif isinstance(data, Presence) and topic == DEFAULT_TOPICS.coordinator_presence:
            was = self.coordinator_online
            self.coordinator_online = data.online
            if data.online and was is False:
                # The coordinator restarted: re-send what it may have lost.
                self.outbox.flush_soon()
            self.node.publish(LinkEvent(link=self.view()))
