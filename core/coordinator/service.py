"""The coordinator: the network side, run by the network operator.

It registers nodes, issues GEMM tasks, verifies results with Freivalds' check (drawing its
random vectors only after the node committed to its result), credits verified work in the
ledger, answers every result with a signed receipt, answers queries (leaderboard, wallet)
and publishes the leaderboards, retained, for late joiners.

Ingest is batched: messages are decoded and checked as they arrive, verified in a worker
thread a batch at a time, and a batch's verdicts are written in one SQLite transaction
before its receipts go out. A message processed twice changes nothing (the ledger is keyed by
sender and work id), and a duplicate result gets its stored receipt again, so a node that
missed a receipt (broker restart, node killed) is made whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import numpy as np

from core.calendar import month_id, season_id
from core.config import BrokerConfig
from core.coordinator.game_store import OFFERED_KINDS, GameService
from core.coordinator.ledger import CoordinatorStore, WorkVerdict
from core.datadir import DataDirLock, prepare_data_dir
from core.errors import ProtocolError
from core.game import (
    GameError,
    QuestState,
    combined_factor,
    liveness_reward,
    should_spot_check,
)
from core.game.boards import BOARDS, MONTHLY_VALIDATORS
from core.game.rates import compute_reward
from core.identity import Identity, load_or_create_identity, short_id
from core.protocol.envelope import (
    DEFAULT_TOPICS,
    Hello,
    InboundFilter,
    Leaderboard,
    LeaderboardEntry,
    Message,
    Presence,
    Receipt,
    Request,
    Response,
    SequenceCounter,
    TaskGemm,
    WorkResult,
    decode,
    encode,
    presence_messages,
    raw_json,
)
from core.protocol.game import (
    MultiplierEvents,
    QuestBoard,
    SeasonInfo,
    events_message,
    quest_board_message,
    quest_view,
    season_message,
)
from core.transport.mqtt import Backoff, make_client, parse_broker_url, raise_if_cancelling

log = logging.getLogger("omnitensor.coordinator")

COORDINATOR_KEY_FILE = "node.key"
# Results whose sender clock says they were made this long after the deadline are late.
DEADLINE_GRACE_S = 30.0
# No single card reaches this; a claim above it is capped (timing is the node's own).
MAX_PLAUSIBLE_TFLOPS = 2000.0


@dataclass
class CoordinatorSettings:
    data_dir: Path
    broker_url: str
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    task_interval_s: float = 10.0  # one work unit covers this much shared time
    task_n: int = 128
    task_dtype: str = "float32"
    board_interval_s: float = 5.0
    freivalds_rounds: int = 2
    batch_max: int = 256
    liveness_interval_s: float = 3600.0  # one liveness credit per node per window


@dataclass
class _NodeState:
    open_task: str | None = None
    open_deadline: float = 0.0
    next_issue: float = 0.0
    online: bool = False
    tflops_claim: float = 0.0


class Coordinator:
    """Run with ``async with Coordinator(settings) as c: await c.run()``."""

    def __init__(self, settings: CoordinatorSettings) -> None:
        self.settings = settings
        self.identity: Identity | None = None
        self.store: CoordinatorStore | None = None
        self.game: GameService | None = None
        self._events_published: tuple[str, ...] | None = None
        self._calendar_published: tuple[str, str, str | None] | None = None
        self._last_work: dict[str, float] = {}  # node -> last verified work (liveness)
        self._saved_high_water: dict[tuple[str, str], int] = {}
        self._lock = DataDirLock(settings.data_dir / "coordinator.lock")
        self._seqs: SequenceCounter | None = None
        self._filter = InboundFilter()
        self._nodes: dict[str, _NodeState] = {}
        self._work_queue: asyncio.Queue[tuple[Message, str]] = asyncio.Queue()
        self._verify_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")
        self._client: aiomqtt.Client | None = None
        self._boards_dirty = True
        self._backoff = Backoff()
        self.closing = False
        self.connected = asyncio.Event()
        self.stats = {"verified": 0, "rejected": 0, "duplicates": 0, "dropped": 0}

    @property
    def node_id(self) -> str:
        assert self.identity is not None
        return self.identity.node_id

    async def __aenter__(self) -> Coordinator:
        prepare_data_dir(self.settings.data_dir)
        self._lock.acquire()
        try:
            self.identity, _ = load_or_create_identity(self.settings.data_dir)
            self._seqs = SequenceCounter(self.settings.data_dir / "seq")
            self.store = CoordinatorStore(self.settings.data_dir / "coordinator.db")
            await self.store.connect()
            self.game = GameService(self.store)
        except BaseException:
            self._lock.release()
            raise
        # Replay protection survives restarts: the high-water marks are stored (every board
        # tick and at exit) and loaded here, so an old signed request cannot be replayed.
        assert self.store is not None
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
        self._verify_thread.shutdown(wait=True, cancel_futures=True)
        self._lock.release()

    # -- the connection ------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected (reconnecting with backoff) until cancelled."""
        backoff = self._backoff
        # The loops live as long as the coordinator, not a connection: they skip publishing
        # while it is down, and nodes re-send what went unanswered.
        loops = [
            asyncio.create_task(self._ingest_loop(), name="coordinator.ingest"),
            asyncio.create_task(self._scheduler_loop(), name="coordinator.tasks"),
            asyncio.create_task(self._board_loop(), name="coordinator.boards"),
            asyncio.create_task(self._liveness_loop(), name="coordinator.liveness"),
        ]
        try:
            await self._connection_loop(backoff)
        finally:
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _connection_loop(self, backoff: Backoff) -> None:
        while not self.closing:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self._stop_if_closing()
                self.connected.clear()
                delay = backoff.next_delay()
                log.warning(
                    "broker %s: %s; retrying in %.1fs",
                    parse_broker_url(self.settings.broker_url).url,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            except Exception:
                self._stop_if_closing()
                # A bug must not take the network down: log it whole, reconnect, go on.
                self.connected.clear()
                log.exception("coordinator session failed; restarting it")
                await asyncio.sleep(backoff.next_delay())

    def close(self) -> None:
        """Ask ``run()`` to end; the caller then cancels its task."""
        self.closing = True

    def _stop_if_closing(self) -> None:
        # See NetworkLink._stop_if_closing: a flag cannot be masked like a cancellation.
        if self.closing:
            raise asyncio.CancelledError
        raise_if_cancelling()

    async def _session(self) -> None:
        assert self.identity is not None and self._seqs is not None
        online, offline = presence_messages(self.identity, self._seqs)
        presence_topic = DEFAULT_TOPICS.coordinator_presence
        client = make_client(
            self.settings.broker,
            self.settings.broker_url,
            identifier=f"omnitensor-coordinator-{self.node_id[:16]}",
            will=aiomqtt.Will(presence_topic, offline, qos=1, retain=True),
        )
        async with client:
            self._client = client
            for topic in DEFAULT_TOPICS.coordinator_subscriptions():
                await client.subscribe(topic, qos=1)
            await client.publish(presence_topic, online, qos=1, retain=True)
            self.connected.set()
            self._backoff.reset()
            log.info(
                "coordinator %s connected to %s",
                short_id(self.node_id),
                parse_broker_url(self.settings.broker_url).url,
            )
            try:
                async for message in client.messages:
                    await self._on_message(message)
                raise aiomqtt.MqttError("message stream ended")
            finally:
                self._client = None
                self.connected.clear()

    async def _publish(
        self, topic: str, type_name: str, data: Any, *, retain: bool = False
    ) -> None:
        if self._client is None or self.identity is None or self._seqs is None:
            raise aiomqtt.MqttError("not connected")
        payload = encode(self.identity, self._seqs.next(), type_name, data)
        await self._client.publish(topic, payload, qos=1, retain=retain)

    # -- inbound -------------------------------------------------------------------------

    async def _on_message(self, mqtt_message: aiomqtt.Message) -> None:
        topic = mqtt_message.topic.value
        payload = mqtt_message.payload
        if not isinstance(payload, bytes | bytearray):
            self.stats["dropped"] += 1
            return
        try:
            message = decode(payload)
        except ProtocolError as exc:
            self.stats["dropped"] += 1
            log.warning("dropped message on %s: %s", topic[:200], exc)
            return
        reason = self._filter.accept(message, topic=topic, retained=mqtt_message.retain)
        if reason is not None:
            if isinstance(message.data, WorkResult) and reason.startswith("replayed"):
                # An authentic result seen before: answer with its stored receipt again.
                await self._work_queue.put((message, topic))
            else:
                self.stats["dropped"] += 1
            return
        data = message.data
        if isinstance(data, WorkResult):
            await self._work_queue.put((message, topic))
        elif isinstance(data, Hello):
            await self._on_hello(message.sender, data)
        elif isinstance(data, Presence):
            await self._on_presence(message.sender, data.online)
        elif isinstance(data, Request):
            await self._on_request(message.sender, data)

    async def _on_hello(self, sender: str, hello: Hello) -> None:
        assert self.store is not None
        await self.store.upsert_node(
            sender,
            name=hello.name,
            online=True,
            backend=hello.backend,
            device=hello.device,
            gemm_tflops=hello.gemm_tflops,
        )
        state = self._nodes.setdefault(sender, _NodeState())
        state.online = True
        state.tflops_claim = hello.gemm_tflops
        # A hello starts a node session: tasks it held in memory may be gone with a restart.
        state.open_task = None
        log.info("node %s (%s) registered: %s", hello.name, short_id(sender), hello.device)

    async def _on_presence(self, sender: str, online: bool) -> None:
        assert self.store is not None
        if not await self.store.known_node(sender):
            return  # presence before hello: wait for the hello to register it
        await self.store.upsert_node(sender, online=online)
        state = self._nodes.setdefault(sender, _NodeState())
        state.online = online
        if online:
            state.next_issue = 0.0

    # -- tasks ---------------------------------------------------------------------------

    async def _scheduler_loop(self) -> None:
        """Keep one open task per online node, one per task interval."""
        while True:
            now = time.time()
            for node_id, state in list(self._nodes.items()):
                if self._client is None or not state.online or state.next_issue > now:
                    continue
                if state.open_task is not None and state.open_deadline > now:
                    continue
                with contextlib.suppress(aiomqtt.MqttError):
                    await self._issue_task(node_id, state)
            await asyncio.sleep(min(0.5, self.settings.task_interval_s / 4))

    async def _issue_task(self, node_id: str, state: _NodeState) -> None:
        assert self.store is not None
        settings = self.settings
        task_id = f"t{int(time.time() * 1000):x}{secrets.token_hex(4)}"
        seed = secrets.randbits(62)
        # The deadline leaves a node that went offline time to come back and deliver.
        deadline = time.time() + max(60.0, settings.task_interval_s * 6)
        await self.store.add_task(
            task_id,
            node_id,
            seed=seed,
            n=settings.task_n,
            dtype=settings.task_dtype,
            deadline_ts=deadline,
        )
        state.open_task, state.open_deadline = task_id, deadline
        state.next_issue = time.time() + settings.task_interval_s
        task = TaskGemm(
            task_id=task_id,
            seed=seed,
            n=settings.task_n,
            dtype=settings.task_dtype,
            deadline_ts=deadline,
        )
        try:
            await self._publish(DEFAULT_TOPICS.node_task(node_id), TaskGemm.TYPE, task)
        except aiomqtt.MqttError:
            state.open_task = None  # never sent: issue another once reconnected
            raise

    # -- work ----------------------------------------------------------------------------

    async def _ingest_loop(self) -> None:
        while True:
            batch = [await self._work_queue.get()]
            while len(batch) < self.settings.batch_max and not self._work_queue.empty():
                batch.append(self._work_queue.get_nowait())
            try:
                await self._process_batch(batch)
            except Exception:
                # Nothing was committed for this batch (one transaction): its nodes re-send
                # and get verdicts then. The loop itself must live on.
                log.exception("a batch of %d work results failed; dropped", len(batch))

    async def _process_batch(self, batch: list[tuple[Message, str]]) -> None:
        assert self.store is not None
        pending: list[tuple[Message, WorkResult, dict[str, Any] | None]] = []
        replies: list[WorkVerdict] = []
        works = [(message, message.expect(WorkResult)) for message, _topic in batch]
        stored, tasks = await self.store.lookup_batch(
            [(m.sender, w.work_id, m.seq, w.task_id) for m, w in works]
        )
        for message, work in works:
            known = stored.get((message.sender, work.work_id)) or stored.get(
                (message.sender, f"#{message.seq}")
            )
            if known is not None:
                self.stats["duplicates"] += 1
                replies.append(known)
                continue
            pending.append((message, work, tasks.get(work.task_id)))
        assert self.game is not None
        # BOINC-style: a node with a long run of verified results is spot-checked only.
        reputations = await self.game.reputations(m.sender for m, _w, _t in pending)
        stakes = await self.game.stakes(m.sender for m, _w, _t in pending)
        full_check = [
            should_spot_check(reputations[m.sender], self.game.rules) for m, _w, _t in pending
        ]
        loop = asyncio.get_running_loop()
        checked = await loop.run_in_executor(
            self._verify_thread, self._verify_all, pending, full_check
        )
        events = await self.game.events()
        records = []
        for (message, work, task), (accepted, reason) in zip(pending, checked, strict=True):
            credited = 0
            details: dict[str, Any] | None = None
            if accepted:
                tflops = self._credited_tflops(message.sender, work)
                factor = combined_factor(events, effective_ts(message.ts, task or {"issued_ts": 0}))
                value = compute_reward(tflops, Fraction(self.settings.task_interval_s), factor)
                credited, capped = self.game.cap_for_stake(value, stakes[message.sender])
                details = {
                    "reason": (
                        f"verified GEMM {work.n}x{work.n} {work.dtype} ({work.work_id}): "
                        f"{tflops:.3f} TFLOPS x {self.settings.task_interval_s:g} s, "
                        f"multiplier {factor}x" + (f"; {capped}" if capped else "")
                    ),
                    "category": "gpu-contributors",
                    "data": {"task_id": work.task_id, "tflops": tflops},
                }
            verdict = WorkVerdict(
                message.sender, work.work_id, message.seq, accepted, reason, credited, None
            )
            records.append((verdict, work.task_id, details))
            state = self._nodes.setdefault(message.sender, _NodeState())
            if task is not None and state.open_task == work.task_id:
                state.open_task = None
        if records:
            inserted: set[tuple[str, str]] = set()
            stored_verdicts = await self.store.record_work(records, inserted)
            for verdict in stored_verdicts:
                self.stats["verified" if verdict.accepted else "rejected"] += 1
            replies.extend(stored_verdicts)
            self._boards_dirty = True
            # Side effects (reputation, quests, slashing) for new verdicts only: a duplicate
            # in the same batch must change nothing.
            fresh = {
                (v.sender, v.work_id): v
                for v in stored_verdicts
                if (v.sender, v.work_id) in inserted
            }
            await self._game_after_work(list(fresh.values()), records)
        receipts = [
            self._publish(
                DEFAULT_TOPICS.node_receipt(verdict.sender),
                Receipt.TYPE,
                Receipt(
                    work_id=verdict.work_id,
                    accepted=verdict.accepted,
                    reason=verdict.reason,
                    credited_base_units=verdict.credited,
                    entry_id=verdict.entry_id,
                ),
            )
            for verdict in replies
        ]
        # Published together (PUBACKs overlap). An unsent receipt (link down) is not lost:
        # the node re-sends its result and gets the stored verdict again.
        await asyncio.gather(*receipts, return_exceptions=True)

    async def _game_after_work(
        self,
        verdicts: list[WorkVerdict],
        records: list[tuple[WorkVerdict, str, dict[str, Any] | None]],
    ) -> None:
        """Reputation, quests, badges for credited work; slashing for work proven wrong."""
        assert self.game is not None
        now = time.time()
        by_key = {(v.sender, v.work_id): d for v, _task, d in records}
        credited: list[tuple[str, str, float, float]] = []
        for verdict in verdicts:
            details = by_key.get((verdict.sender, verdict.work_id))
            if verdict.accepted:
                self._last_work[verdict.sender] = now
            if verdict.accepted and verdict.entry_id is not None and details is not None:
                credited.append(
                    (
                        verdict.sender,
                        verdict.work_id,
                        float(details["data"]["tflops"]),
                        self.settings.task_interval_s,
                    )
                )
            elif not verdict.accepted and verdict.reason.startswith("verification failed"):
                slashed = await self.game.on_failed_work(
                    verdict.sender, verdict.work_id, verdict.reason
                )
                log.warning(
                    "work %s from %s failed verification; slashed %d base units",
                    verdict.work_id,
                    short_id(verdict.sender),
                    slashed,
                )
        if credited:
            await self.game.on_verified_batch(credited, now)

    def _verify_all(
        self,
        pending: list[tuple[Message, WorkResult, dict[str, Any] | None]],
        full_check: list[bool] | None = None,
    ) -> list[tuple[bool, str]]:
        """Runs in the verify thread: Freivalds' check of each result against its task.

        Where ``full_check`` is False (a trusted node not drawn for a spot check) the result
        is still matched against its task and its commitment, but not multiplied out.
        """
        out: list[tuple[bool, str]] = []
        checks = full_check if full_check is not None else [True] * len(pending)
        for (message, work, task), check in zip(pending, checks, strict=True):
            try:
                out.append(self._verify_one(message, work, task, check))
            except Exception as exc:
                # One malformed result must not stop the ingest of everyone else's.
                log.warning("work %s cannot be checked: %r", work.work_id, exc)
                out.append((False, "verification failed: malformed result"))
        return out

    def _verify_one(
        self, message: Message, work: WorkResult, task: dict[str, Any] | None, check: bool
    ) -> tuple[bool, str]:
        from kernels.freivalds import commit, verify_seeded

        if task is None or task["node_id"] != message.sender:
            return False, f"unknown task {work.task_id}"
        if task["done"]:
            return False, "task already answered"
        if (work.seed, work.n, work.dtype) != (task["seed"], task["n"], task["dtype"]):
            return False, "result is for other operands than the task's"
        if effective_ts(message.ts, task) > task["deadline_ts"] + DEADLINE_GRACE_S:
            return False, "deadline missed"
        matrix = np.frombuffer(work.result_bytes(), dtype=np.dtype(work.dtype).newbyteorder("<"))
        matrix = matrix.reshape(work.n, work.n)
        if not check:
            if commit(matrix) == work.commitment:
                return True, ""
            return False, "verification failed: result does not match its commitment"
        # The random vectors are drawn here, after the node committed to its result.
        result = verify_seeded(
            work.seed,
            work.n,
            work.dtype,
            matrix,
            work.commitment,
            rounds=self.settings.freivalds_rounds,
        )
        return result.ok, "" if result.ok else f"verification failed: {result.reason}"

    def _credited_tflops(self, sender: str, work: WorkResult) -> float:
        """The throughput a verified work unit is paid at.

        A work unit is small (its GEMM takes milliseconds), so its own timing says little
        about the card; the node's benchmark (announced in its hello) is its sustained
        capability. Both are the node's own measurements: capped by physics here, and
        verified work is what makes them count at all.
        """
        state = self._nodes.get(sender)
        claim = state.tflops_claim if state is not None and state.tflops_claim > 0 else work.tflops
        return max(0.0, min(claim, MAX_PLAUSIBLE_TFLOPS))

    # -- requests and boards -------------------------------------------------------------

    async def _on_request(self, sender: str, request: Request) -> None:
        handlers: dict[str, Callable[[str, dict[str, Any]], Awaitable[Any]]] = {
            "leaderboard": self._leaderboard_query,
            "wallet": self._wallet_query,
            "ping": self._ping,
            "events": self._events_query,
            "quests": self._quests_query,
            "quest.accept": self._quest_accept,
            "quest.claim": self._quest_claim,
            "season": self._season_query,
            "stake": self._stake,
            "unstake": self._unstake,
            "bench.report": self._bench_report,
        }
        handler = handlers.get(request.method)
        try:
            if handler is None:
                raise ValueError(f"unknown method {request.method!r}")
            result = await handler(sender, dict(request.params))
            response = Response(request_id=request.request_id, ok=True, result=raw_json(result))
        except (ValueError, TypeError, GameError) as exc:
            response = Response(request_id=request.request_id, ok=False, error=str(exc)[:500])
        except Exception as exc:
            # A request must never take the coordinator off the broker.
            log.exception("request %s from %s failed", request.method, short_id(sender))
            response = Response(
                request_id=request.request_id,
                ok=False,
                error=f"internal error: {type(exc).__name__}",
            )
        with contextlib.suppress(aiomqtt.MqttError):  # the node's request times out
            await self._publish(DEFAULT_TOPICS.node_response(sender), Response.TYPE, response)

    async def _events_query(self, sender: str, params: dict[str, Any]) -> Any:
        assert self.game is not None
        return await self.game.events_view(time.time())

    def _capability(self, sender: str) -> float:
        state = self._nodes.get(sender)
        return state.tflops_claim if state is not None and state.tflops_claim > 0 else 0.0

    async def _quests_query(self, sender: str, params: dict[str, Any]) -> Any:
        assert self.game is not None
        now = time.time()
        states = await self.game.quests(sender, self._capability(sender) or 0.1, now)
        return {"quests": [quest_json(s, now) for s in states]}

    async def _quest_accept(self, sender: str, params: dict[str, Any]) -> Any:
        assert self.game is not None
        now = time.time()
        state = await self.game.accept_quest(sender, str(params.get("id", "")), now)
        return {"quest": quest_json(state, now), "message": f"accepted {state.title}"}

    async def _quest_claim(self, sender: str, params: dict[str, Any]) -> Any:
        assert self.game is not None
        result = await self.game.claim_quest(sender, str(params.get("id", "")), time.time())
        self._boards_dirty = True
        return result

    async def _season_query(self, sender: str, params: dict[str, Any]) -> Any:
        assert self.game is not None
        return await self.game.season_view(sender, time.time())

    async def _stake(self, sender: str, params: dict[str, Any]) -> Any:
        assert self.game is not None
        return await self.game.stake(sender, _amount(params))

    async def _unstake(self, sender: str, params: dict[str, Any]) -> Any:
        assert self.game is not None
        return await self.game.unstake(sender, _amount(params))

    async def _bench_report(self, sender: str, params: dict[str, Any]) -> Any:
        """A node ran the benchmark suite (its own Freivalds check passed): quest progress."""
        assert self.game is not None
        if params.get("verified") is not True:
            raise ValueError("only a verified benchmark counts")
        tflops = params.get("tflops")
        state = self._nodes.setdefault(sender, _NodeState())
        if isinstance(tflops, int) and tflops > 0:
            state.tflops_claim = min(tflops / 1000.0, MAX_PLAUSIBLE_TFLOPS)
        now = time.time()
        await self.game.on_benchmark(sender, now, now)
        return {"message": "benchmark recorded"}

    async def _ping(self, sender: str, params: dict[str, Any]) -> Any:
        return {"coordinator": self.node_id, "ts": time.time()}

    async def _leaderboard_query(self, sender: str, params: dict[str, Any]) -> Any:
        assert self.store is not None
        category = str(params.get("category") or "gpu-contributors")
        if category not in BOARDS:
            raise ValueError(f"unknown category {category!r}; one of {', '.join(BOARDS)}")
        default_period = month_id() if category == MONTHLY_VALIDATORS else season_id()
        period = str(params.get("season") or default_period)
        offset = min(max(0, int(params.get("offset") or 0)), 10**9)
        limit = min(max(1, int(params.get("limit") or 10)), 1000)
        rows, total = await self.store.leaderboard(category, period, offset=offset, limit=limit)
        own_rank, own_amount = await self.store.rank_of(category, period, sender)
        return {
            "category": category,
            "season": period,
            "total": total,
            "own_rank": own_rank,
            "own_amount": own_amount,
            "entries": [
                {"rank": r.rank, "node_id": r.node_id, "name": r.name, "amount": r.amount}
                for r in rows
            ],
        }

    async def _wallet_query(self, sender: str, params: dict[str, Any]) -> Any:
        assert self.store is not None
        limit = min(max(1, int(params.get("limit") or 100)), 1000)
        entries = await self.store.entries(sender, limit)
        today = time.time() - time.time() % 86400
        assert self.game is not None
        account = await self.game.account(sender)
        return {
            "staked": account.staked,
            "available": account.balance,
            "reputation": account.reputation.consecutive,
            "reputation_detail": {
                "consecutive": account.reputation.consecutive,
                "verified": account.reputation.verified,
                "failed": account.reputation.failed,
            },
            "balance": await self.store.balance(sender),
            "entries": [e.to_dict() for e in entries],
            "rejected": await self.store.rejected_work(sender, limit),
            "earned_today": sum(e.amount for e in entries if e.ts >= today and e.amount > 0),
            "work": await self.store.work_counts(sender),
        }

    async def _board_loop(self) -> None:
        """Publish each board's top 100 (retained) when it changed; events; season ends."""
        while True:
            if self._client is not None and self.game is not None:
                with contextlib.suppress(aiomqtt.MqttError):
                    await self._publish_events()
                    await self._publish_calendar()
                if await self.game.roll_over(time.time()):
                    self._boards_dirty = True
            await self.save_high_water()
            if self._boards_dirty and self._client is not None:
                self._boards_dirty = False
                try:
                    await self.publish_boards()
                except aiomqtt.MqttError:
                    self._boards_dirty = True
            await asyncio.sleep(self.settings.board_interval_s)

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
            await self.credit_liveness(end - window, end)

    async def credit_liveness(self, start: float, end: float) -> int:
        """Credit one liveness reward per node that worked in [start, end); once per window.

        The same windows measure uptime for uptime quests: a known node counts as online for
        a window in which it delivered verified work, offline otherwise.
        """
        assert self.store is not None and self.game is not None
        amount = liveness_reward(end - start, self.game.rules)
        credited = 0
        now = time.time()
        for node_id in set(self._nodes) | set(self._last_work):
            worked = start <= self._last_work.get(node_id, 0.0) < end
            await self.game.on_uptime(
                node_id, (end - start) if worked else 0.0, end - start, end, now
            )
        for node_id, last in list(self._last_work.items()):
            if not start <= last < end or amount <= 0:
                continue
            span = time.strftime("%Y-%m-%d %H:%M", time.gmtime(start))
            with contextlib.suppress(sqlite3.IntegrityError):  # this window was credited
                await self.store.add_entry(
                    account=node_id,
                    amount=amount,
                    kind="liveness",
                    reason=f"liveness: online and verified in the {end - start:g} s from "
                    f"{span} UTC",
                    ref=f"live:{int(start)}",
                )
                credited += 1
        return credited

    async def _publish_calendar(self) -> None:
        """Retained and signed: the quest board and the season, re-sent when a period turns."""
        assert self.game is not None
        now = time.time()
        last = await self.game.last_awarded()
        season = season_message(now, last)
        key = (season.season, season.month, last)
        if key == self._calendar_published:
            return
        await self._publish(DEFAULT_TOPICS.season, SeasonInfo.TYPE, season, retain=True)
        board = quest_board_message(now)
        offered = [q for q in board.quests if q.kind in OFFERED_KINDS]
        await self._publish(
            DEFAULT_TOPICS.quests,
            QuestBoard.TYPE,
            msgspec.structs.replace(board, quests=offered),
            retain=True,
        )
        self._calendar_published = key

    async def _publish_events(self) -> None:
        """Retained and signed: announced multiplier events, re-sent when they change."""
        assert self.game is not None
        now = time.time()
        events = await self.game.events()
        message = events_message(events, now)
        key = tuple(sorted(e.id for e in message.events))
        if key == self._events_published:
            return
        await self._publish(DEFAULT_TOPICS.events, MultiplierEvents.TYPE, message, retain=True)
        self._events_published = key

    async def publish_boards(self) -> None:
        assert self.store is not None
        for category in BOARDS:
            period = month_id() if category == MONTHLY_VALIDATORS else season_id()
            rows, _ = await self.store.leaderboard(category, period, limit=100)
            board = Leaderboard(
                category=category,
                season=period,
                entries=[
                    LeaderboardEntry(
                        rank=r.rank, node_id=r.node_id, name=r.name[:64], amount_base_units=r.amount
                    )
                    for r in rows
                ],
                updated_ts=time.time(),
            )
            await self._publish(
                DEFAULT_TOPICS.leaderboard(category), Leaderboard.TYPE, board, retain=True
            )


def effective_ts(claimed: float, task: dict[str, Any]) -> float:
    """When a result counts as made: the node's signed clock, clamped to [issued, now].

    A node cannot date its work before the task existed (to reach an old multiplier) nor in
    the future; within that window its clock is trusted, so a result that waited in its
    outbox through an outage still counts as made on time.
    """
    return min(max(claimed, float(task["issued_ts"])), time.time())


def _amount(params: dict[str, Any]) -> int:
    """An OMNIT amount from a request: integer base units only (no floats in money)."""
    value = params.get("amount")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("amount must be a positive whole number of base units")
    return value


def quest_json(state: QuestState, now: float) -> dict[str, Any]:
    view = quest_view(state, now)
    deadline = view.deadline if view.deadline is not None else view.accept_by
    return {
        "id": view.quest_id,
        "title": view.title,
        "kind": view.kind,
        "state": view.status,
        # Floats for display only (a progress bar); the exact values ride along as text.
        "progress": {
            "current": float(Fraction(view.progress)),
            "target": float(Fraction(view.goal)),
            "unit": view.unit,
            "exact": {"current": view.progress, "target": view.goal},
        },
        "progress_text": view.progress_text,
        "deadline_ts": deadline,
        "reward": view.reward_base_units,
        "reward_text": view.reward_text,
        "achievement": view.achievement,
        "action": view.action,
        "description": view.progress_text,
    }


def coordinator_banner(coordinator: Coordinator) -> str:
    return (
        f"coordinator public key {coordinator.node_id} "
        f"(nodes pin it with --coordinator-key {coordinator.node_id})"
    )
