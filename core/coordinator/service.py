"""The coordinator: the network side, run by the network operator.

It registers nodes and issues tasks (``scheduler``), verifies results and credits them in
the ledger with a signed receipt for each (``ingest``), answers node requests
(``handlers``) and publishes the network's state, retained, for late joiners
(``publishing``). This module wires those parts to one signed session on the broker and runs
the loops that live as long as the coordinator: boards, liveness, replay marks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time

import aiomqtt

from core.coordinator.auditor import local_auditor
from core.coordinator.game_store import GameService
from core.coordinator.handlers import RequestHandlers
from core.coordinator.inference import InferenceDesk
from core.coordinator.ingest import Ingest
from core.coordinator.job_book import JobBook
from core.coordinator.limits import RateLimiter
from core.coordinator.publishing import Publisher
from core.coordinator.quality import QualityDesk, check_bank
from core.coordinator.scheduler import Scheduler
from core.coordinator.secret import SECRET_FILE, load_or_create_secret
from core.coordinator.state import CoordinatorSettings, CoordinatorState
from core.coordinator.store import CoordinatorStore
from core.datadir import DataDirLock, prepare_data_dir
from core.game import liveness_reward
from core.identity import Identity, load_or_create_identity, short_id
from core.protocol import (
    DEFAULT_TOPICS,
    Hello,
    InboundFilter,
    InferCommit,
    InferReveal,
    Message,
    Presence,
    QualityAnswer,
    Request,
    SequenceCounter,
    WorkCommit,
    WorkProof,
)
from core.protocol.methods import METHODS
from core.transport.mqtt import client_id_for
from core.transport.session import PeerSession, SessionSettings

log = logging.getLogger("omnitensor.coordinator")

# A request is a question for now: an old one (replayed, or stuck in a queue) is dropped.
REQUEST_MAX_AGE_S = 120.0
HELLOS_PER_S = 0.2  # per node: its heartbeat is one a minute
# Everything a node may publish, before its signature is even checked: a flood from one
# topic costs a dictionary lookup per message, not an Ed25519 verification.
INGRESS_PER_S = 50.0
INGRESS_BURST = 200.0
NEW_NODES_PER_S = 5.0  # registrations of identities never seen, network-wide

__all__ = ["Coordinator", "CoordinatorSettings", "coordinator_banner"]


class Coordinator:
    """Run with ``async with Coordinator(settings) as c: await c.run()``."""

    # Built on entering (they need the store): the session and the parts it feeds.
    session: PeerSession
    state: CoordinatorState
    scheduler: Scheduler
    ingest: Ingest
    desk: InferenceDesk
    quality: QualityDesk
    handlers: RequestHandlers
    publisher: Publisher

    def __init__(self, settings: CoordinatorSettings) -> None:
        self.settings = settings
        self.identity: Identity | None = None
        self.store: CoordinatorStore | None = None
        self.game: GameService | None = None
        self._saved_high_water: dict[tuple[str, str], int] = {}
        self._lock = DataDirLock(settings.data_dir / "coordinator.lock")
        self._filter = InboundFilter()
        self.closing = False

    @property
    def node_id(self) -> str:
        assert self.identity is not None
        return self.identity.node_id

    @property
    def connected(self) -> asyncio.Event:
        return self.session.connected

    @property
    def stats(self) -> dict[str, int]:
        return self.state.stats

    async def __aenter__(self) -> Coordinator:
        if self.settings.quality_bank is not None:
            await check_bank(self.settings.quality_bank)  # a bad private bank stops the start
        data_dir = self.settings.data_dir
        prepare_data_dir(data_dir)
        self._lock.acquire()
        try:
            self.identity, _ = load_or_create_identity(data_dir)
            seqs = SequenceCounter(data_dir / "seq")
            secret = load_or_create_secret(data_dir / SECRET_FILE)
            self.store = CoordinatorStore(data_dir / "coordinator.db")
            await self.store.connect()
            self.game = GameService(self.store, self.settings.rules)
        except BaseException:
            self._lock.release()
            raise
        self.session = PeerSession(
            SessionSettings(
                url=self.settings.broker_url,
                broker=self.settings.broker,
                client_id=client_id_for(data_dir, "coordinator"),
                presence_topic=DEFAULT_TOPICS.coordinator_presence,
                subscriptions=DEFAULT_TOPICS.coordinator_subscriptions(),
            ),
            self.identity,
            seqs,
            on_message=self._on_message,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
            admit=self._admit,
        )
        session = self.session
        self.state = CoordinatorState(
            settings=self.settings,
            node_id=self.node_id,
            store=self.store,
            game=self.game,
            publish=lambda topic, kind, data, retain: session.publish(
                topic, kind, data, retain=retain
            ),
            is_connected=lambda: session.is_up,
        )
        self.scheduler = Scheduler(self.state)
        self.ingest = Ingest(self.state, self.scheduler, secret)
        self.desk = InferenceDesk(self.state, JobBook(self.game))
        self.desk.audit_encode = await asyncio.to_thread(local_auditor)
        if self.desk.audit_encode is None:
            log.info("no model here: inference results are checked by redundancy alone")
        self.quality = QualityDesk(self.state)
        self.handlers = RequestHandlers(self.state, self.desk)
        self.publisher = Publisher(self.state)
        self._hellos = RateLimiter(HELLOS_PER_S, 3.0)
        self._ingress = RateLimiter(INGRESS_PER_S, INGRESS_BURST)
        self._new_nodes = RateLimiter(NEW_NODES_PER_S, 50.0)
        # Units issued before a restart are still open: their nodes may answer them.
        for unit in await self.store.open_units():
            self.state.node(unit.node_id).slot(unit.worker).open_task = unit.task_id
        refunded = await self.desk.fail_orphans()
        if refunded:
            log.warning("%d job(s) left running by the last run refunded", refunded)
        # Replay protection survives restarts: the high-water marks are stored (every board
        # tick and at exit) and loaded here, so an old signed request cannot be replayed.
        self._saved_high_water = await self.store.load_high_water()
        self._filter = InboundFilter(
            coordinator_ids={self.node_id},
            load_high_water=lambda sender, topic: self._saved_high_water.get((sender, topic), 0),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self.save_high_water()
            await self.store.close()
        if hasattr(self, "ingest"):
            self.ingest.close()
        self._lock.release()

    # -- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected (reconnecting with backoff) until cancelled."""
        # The loops live as long as the coordinator, not a connection: they skip publishing
        # while it is down, and nodes re-send what went unanswered.
        await self.session.run_with(
            {
                "coordinator.ingest": self.ingest.run(),
                "coordinator.inference": self.desk.run(),
                "coordinator.quality": self.quality.run(),
                "coordinator.requests": self.handlers.run(),
                "coordinator.tasks": self.scheduler.run(),
                "coordinator.boards": self._board_loop(),
                "coordinator.liveness": self._liveness_loop(),
                "coordinator.deadlines": self._deadline_loop(),
            }
        )

    def close(self) -> None:
        """Ask ``run()`` to end; the caller then cancels its task."""
        self.closing = True
        if hasattr(self, "session"):
            self.session.close()

    async def _on_connected(self) -> None:
        log.info("coordinator %s connected to %s", short_id(self.node_id), self.session.display_url)

    async def _on_disconnected(self, exc: BaseException, delay: float) -> None:
        log.warning("broker %s: %s; retrying in %.1fs", self.session.display_url, exc, delay)

    def _admit(self, topic: str) -> bool:
        """A cheap gate per publishing node (the topic names it), ahead of decoding."""
        info = DEFAULT_TOPICS.parse(topic)
        if info is None or info.node_id is None:
            return True
        return self._ingress.allow(info.node_id, time.monotonic())

    async def _on_message(self, message: Message, topic: str, retained: bool) -> None:
        now = time.time()
        data = message.data
        reason = self._filter.accept(message, topic=topic, retained=retained)
        if reason is not None:
            if isinstance(data, WorkCommit | WorkProof) and reason.startswith("replayed"):
                # An authentic work message seen before: its stored answer goes out again.
                self.ingest.offer(message, data)
            else:
                self.state.stats["dropped"] += 1
            return
        if isinstance(data, WorkCommit | WorkProof):
            self.scheduler.seen(message.sender, now)
            self.ingest.offer(message, data)
        elif isinstance(data, InferCommit | InferReveal):
            self.scheduler.seen(message.sender, now)
            self.desk.offer(message, data)
        elif isinstance(data, QualityAnswer):
            self.scheduler.seen(message.sender, now)
            self.quality.offer(message, data)
        elif isinstance(data, Request):
            if message.ts < now - REQUEST_MAX_AGE_S:
                self.state.stats["dropped"] += 1
                return
            self.scheduler.seen(message.sender, now)
            spec = METHODS.get(data.method)
            if spec is not None and spec.mutating:
                # Record the replay mark before the effect: after a crash, this request can
                # not be replayed (it may be lost instead, which the node sees as a timeout).
                await self.save_high_water()
            self.handlers.offer(message.sender, data, now)
        elif isinstance(data, Hello):
            if not self._hellos.allow(message.sender, now):
                return
            if message.sender not in self.state.nodes and not self._new_nodes.allow("", now):
                self.state.stats["dropped"] += 1
                return
            first = message.sender not in self.state.nodes
            await self.scheduler.on_hello(message.sender, data, now)
            if first and self.settings.starter_grants:
                await self.desk.jobs.grant_starter(
                    message.sender, self.desk.rules.starter_grant, now
                )
        elif isinstance(data, Presence):
            await self.scheduler.on_presence(message.sender, data.online, now)

    # -- loops ---------------------------------------------------------------------------

    async def _board_loop(self) -> None:
        """Publish each board's top 100 (retained) when it changed; events; season ends."""
        while True:
            try:
                await self._board_tick()
            except Exception:
                # A background loop outlives any bug: log it whole and try again next tick.
                log.exception("board tick failed")
            await asyncio.sleep(self.settings.board_interval_s)

    async def _board_tick(self) -> None:
        assert self.game is not None
        state, publisher = self.state, self.publisher
        if self.session.is_up:
            with contextlib.suppress(aiomqtt.MqttError):
                await publisher.publish_events()
                await publisher.publish_calendar()
        if await self.game.roll_over(time.time()):
            state.boards_dirty = True
        await self.save_high_water()
        if state.boards_dirty and self.session.is_up:
            state.boards_dirty = False
            try:
                await publisher.publish_boards()
            except aiomqtt.MqttError:
                state.boards_dirty = True
        # After the roll-over: a season's awards count in a window that closed after its end.
        await self.handlers.governance.tick(time.time())

    async def _deadline_loop(self) -> None:
        """Forfeit units past their deadline (every few seconds)."""
        while True:
            try:
                await self.ingest.expire()
            except Exception:
                log.exception("deadline check failed")
            await asyncio.sleep(min(5.0, self.settings.board_interval_s))

    async def save_high_water(self) -> None:
        """Store the replay high-water marks that moved since the last save."""
        assert self.store is not None
        current = self._filter.high_water
        moved = {k: v for k, v in current.items() if self._saved_high_water.get(k, 0) < v}
        await self.store.save_high_water(moved)
        self._saved_high_water.update(moved)

    async def _liveness_loop(self) -> None:
        """The base reward for liveness: each window, nodes that did verified work in it."""
        window = self.settings.liveness_interval_s
        while True:
            end = (time.time() // window + 1) * window
            await asyncio.sleep(max(0.0, end - time.time()))
            try:
                await self.credit_liveness(end - window, end)
            except Exception:
                log.exception("liveness credit for the window ending %s failed", end)

    async def credit_liveness(self, start: float, end: float) -> int:
        """Credit liveness for [start, end) by the time verified work covered; once per window.

        Coverage is the coordinator's own evidence: a verified unit vouches for its node from
        the unit's issue until the next unit could have been issued (``covered_intervals``).
        One unit an hour covers seconds, not the hour. The same coverage is the online time
        of uptime quests.
        """
        assert self.store is not None and self.game is not None
        window = end - start
        now = time.time()
        credited = 0
        for node_id in set(self.state.nodes) | set(self.state.covered):
            online = covered_seconds(self.state.covered.get(node_id, []), start, end)
            await self.game.on_uptime(node_id, online, window, end, now)
            amount = liveness_reward(online, self.game.rules)
            if amount <= 0:
                continue
            span = time.strftime("%Y-%m-%d %H:%M", time.gmtime(start))
            with contextlib.suppress(sqlite3.IntegrityError):  # this window was credited
                await self.store.add_entry(
                    account=node_id,
                    amount=amount,
                    kind="liveness",
                    reason=f"liveness: verified work covered {online:.0f} s of the {window:g} s "
                    f"from {span} UTC",
                    ref=f"live:{int(start)}",
                )
                credited += 1
        # Intervals that ended before this window are of no further use.
        for node_id, intervals in list(self.state.covered.items()):
            intervals[:] = [iv for iv in intervals if iv[1] > start]
            if not intervals:
                del self.state.covered[node_id]
        return credited

    async def publish_boards(self) -> None:
        await self.publisher.publish_boards()


def covered_seconds(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """The length of the union of ``intervals`` inside [start, end)."""
    total, reach = 0.0, start
    for first, last in sorted(intervals):
        low, high = max(first, reach), min(last, end)
        if high > low:
            total += high - low
            reach = high
    return total


def coordinator_banner(coordinator: Coordinator) -> str:
    return (
        f"coordinator public key {coordinator.node_id} "
        f"(nodes pin it with --coordinator-key {coordinator.node_id})"
    )
