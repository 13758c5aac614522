"""The coordinator's answers to node requests: boards, wallet, quests, season, stakes.

Requests are served off the work path: the message loop only checks and queues them (a
bounded queue), and a few workers answer. Each sender has a token bucket; a sender over its
rate gets one "rate limited" answer a second and the rest of its flood is dropped, so one
identity cannot slow the answers everyone else gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Any

import aiomqtt

from core.coordinator.data_listing import dataset_listing
from core.coordinator.data_registry import DataRegistry
from core.coordinator.data_tasks import DataTasks
from core.coordinator.governance import GovernanceDesk
from core.coordinator.inference import InferenceDesk
from core.coordinator.limits import RateLimiter
from core.coordinator.publishing import quest_view
from core.coordinator.state import CoordinatorState
from core.errors import ProtocolError
from core.game import GameError, QuestState
from core.game.boards import BOARDS, board_period
from core.identity import short_id
from core.protocol import DEFAULT_TOPICS, Request, Response, raw_json
from core.protocol.methods import (
    AmountParams,
    JobResultParams,
    JobSubmitParams,
    LeaderboardParams,
    QuestParams,
    WalletParams,
    parse_params,
)

log = logging.getLogger("omnitensor.coordinator")

QUEUE_MAX = 2_000
WORKERS = 4
REQUESTS_PER_S = 10.0  # per sender, sustained
REQUEST_BURST = 40.0
BENCH_EVERY_S = 600.0  # one benchmark unit per node per ten minutes

Handler = Callable[[str, Any], Awaitable[Any]]
# Answers built from several reads and no write: read as one consistent view.
SNAPSHOT_READS = frozenset({"wallet", "leaderboard", "season", "jobs", "job.result"})


class RequestHandlers:
    """One handler per method of ``core.protocol.methods``; every request is answered once."""

    def __init__(self, state: CoordinatorState, desk: InferenceDesk) -> None:
        self.state = state
        self.desk = desk
        self.datasets = DataRegistry(state)
        self.data_tasks = DataTasks(state, self.datasets)
        self.queue: asyncio.Queue[tuple[str, Request]] = asyncio.Queue(QUEUE_MAX)
        self._limiter = RateLimiter(REQUESTS_PER_S, REQUEST_BURST)
        self._told_limited = RateLimiter(1.0, 1.0)  # one "rate limited" answer a second
        self._bench = RateLimiter(1.0 / BENCH_EVERY_S, 1.0)
        self._refusals: set[asyncio.Task[None]] = set()
        self.governance = GovernanceDesk(state)  # its tallies are published by the board tick
        self._handlers: dict[str, Handler] = {
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
            "bench.challenge": self._bench_challenge,
            "job.submit": self._job_submit,
            "job.result": self._job_result,
            "jobs": self._jobs,
            "data.offer": lambda s, p: self.datasets.offer(s, p, time.time()),
            "data.put": self.datasets.put,
            "data.commit": lambda s, p: self.datasets.commit(s, p, time.time()),
            "datasets": lambda s, p: dataset_listing(self.state, s, p.limit),
            "data.task": lambda s, p: self.data_tasks.take(s, p, time.time()),
            "data.get": lambda s, p: self.data_tasks.get(s, p, time.time()),
            "data.report": lambda s, p: self.data_tasks.report(s, p, time.time()),
            "proposals": self.governance.proposals,
            "vote": self.governance.vote,
        }

    def offer(self, sender: str, request: Request, now: float) -> None:
        """Queue a request, or refuse it (rate limited, queue full) without waiting."""
        if not self._limiter.allow(sender, now):
            if self._told_limited.allow(sender, now):
                self._answer_soon(sender, request, "rate limited: too many requests, slow down")
            return
        try:
            self.queue.put_nowait((sender, request))
        except asyncio.QueueFull:
            self._answer_soon(sender, request, "busy: the coordinator's request queue is full")

    def _answer_soon(self, sender: str, request: Request, error: str) -> None:
        response = Response(request_id=request.request_id, recipient=sender, ok=False, error=error)
        task = asyncio.get_running_loop().create_task(self._send(sender, response))
        self._refusals.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._refusals.discard)

    async def run(self) -> None:
        """The workers: as many answers in flight as there are workers."""
        await asyncio.gather(*(self._worker() for _ in range(WORKERS)))

    async def _worker(self) -> None:
        while True:
            sender, request = await self.queue.get()
            try:
                await self.handle(sender, request)
            except Exception:
                log.exception("answering %s from %s failed", request.method, short_id(sender))

    async def handle(self, sender: str, request: Request) -> None:
        """Answer one request with a signed response (an error response when it fails)."""
        try:
            params = parse_params(request.method, request.params)
            handler = self._handlers[request.method]
            if request.method in SNAPSHOT_READS:
                # One view of the store: a write transaction on the same connection is
                # never seen half done (a ledger entry without its board total).
                async with self.state.store.consistent():
                    result = await handler(sender, params)
            else:
                result = await handler(sender, params)
            response = Response(
                request_id=request.request_id, recipient=sender, ok=True, result=raw_json(result)
            )
        except (ValueError, TypeError, GameError, ProtocolError) as exc:
            error = exc.detail if isinstance(exc, ProtocolError) else str(exc)
            response = Response(
                request_id=request.request_id, recipient=sender, ok=False, error=error[:500]
            )
        except Exception as exc:
            # A request must never take the coordinator off the broker.
            log.exception("request %s from %s failed", request.method, short_id(sender))
            response = Response(
                request_id=request.request_id,
                recipient=sender,
                ok=False,
                error=f"internal error: {type(exc).__name__}",
            )
        await self._send(sender, response)

    async def _send(self, sender: str, response: Response) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # the node's request times out
            await self.state.publish(
                DEFAULT_TOPICS.node_response(sender), Response.TYPE, response, False
            )

    async def _events_query(self, sender: str, params: Any) -> Any:
        return await self.state.game.events_view(time.time())

    async def _capability(self, sender: str) -> float:
        """The node's capability in TFLOPS, as measured on its verified work (0: unknown)."""
        return await self.state.store.node_rate(sender) / 1e12

    async def _quests_query(self, sender: str, params: Any) -> Any:
        now = time.time()
        states = await self.state.game.quests(sender, await self._capability(sender), now)
        return {"quests": [quest_json(s, now) for s in states]}

    async def _quest_accept(self, sender: str, params: QuestParams) -> Any:
        now = time.time()
        state = await self.state.game.accept_quest(sender, params.id, now)
        return {"quest": quest_json(state, now), "message": f"accepted {state.title}"}

    async def _quest_claim(self, sender: str, params: QuestParams) -> Any:
        result = await self.state.game.claim_quest(sender, params.id, time.time())
        self.state.boards_dirty = True
        return result

    async def _season_query(self, sender: str, params: Any) -> Any:
        return await self.state.game.season_view(sender, time.time())

    async def _stake(self, sender: str, params: AmountParams) -> Any:
        return await self.state.game.stake(sender, params.amount)

    async def _unstake(self, sender: str, params: AmountParams) -> Any:
        result = await self.state.game.unstake(sender, params.amount)
        until = await self.state.game.unbonding_until(sender)
        return {**result, "unbonding_until": until}

    async def _bench_challenge(self, sender: str, params: Any) -> Any:
        """Benchmark quests progress by a benchmark unit the coordinator issues and verifies."""
        node = self.state.nodes.get(sender)
        if node is None or not node.online:
            raise ValueError("say hello first: this node is not registered as online")
        if not self._bench.allow(sender, time.time()):
            raise ValueError(f"one benchmark unit per {BENCH_EVERY_S / 60:g} minutes")
        node.bench_wanted = True
        return {"message": "a benchmark unit is on its way; it counts once verified"}

    async def _job_submit(self, sender: str, params: JobSubmitParams) -> Any:
        return await self.desk.submit(sender, list(params.texts), time.time())

    async def _job_result(self, sender: str, params: JobResultParams) -> Any:
        jobs = self.desk.jobs
        job = await jobs.job(params.job_id)
        if job is None or job.requester != sender:
            raise ValueError(f"no job {params.job_id} of this node")
        tasks = await jobs.tasks(job.job_id)
        dim, count, vectors = 0, 0, ""
        if job.state == "delivered":
            dim, count, vectors = await jobs.vectors(job.job_id, params.offset, params.limit)
        return {
            **job_json(job),
            "offset": params.offset,
            "count": count,
            "dim": dim,
            "embeddings_b64": vectors,
            "tasks": [
                {
                    "task_id": t.task_id,
                    "first": t.first,
                    "count": t.count,
                    "state": t.state,
                    "workers": t.provenance.get("workers", []),
                    "min_similarity": t.provenance.get("min_similarity"),
                    "rejected": t.provenance.get("rejected", {}),
                }
                for t in tasks
            ],
        }

    async def _jobs(self, sender: str, params: WalletParams) -> Any:
        return {"jobs": [job_json(j) for j in await self.desk.jobs.jobs_of(sender, params.limit)]}

    async def _ping(self, sender: str, params: Any) -> Any:
        return {"coordinator": self.state.node_id, "ts": time.time()}

    async def _leaderboard_query(self, sender: str, params: LeaderboardParams) -> Any:
        category = params.category
        if category not in BOARDS:
            raise ValueError(f"unknown category {category!r}; one of {', '.join(BOARDS)}")
        period = params.season or board_period(category, time.time())
        rows, total = await self.state.store.leaderboard(
            category, period, offset=params.offset, limit=params.limit
        )
        own_rank, own_amount = await self.state.store.rank_of(category, period, sender)
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

    async def _wallet_query(self, sender: str, params: WalletParams) -> Any:
        limit = params.limit
        store = self.state.store
        entries = await store.entries(sender, limit)
        now = time.time()
        account = await self.state.game.account(sender)
        return {
            "staked": account.staked,
            "unbonding": account.unbonding,
            "unbonding_until": await self.state.game.unbonding_until(sender),
            "available": account.balance,
            "reputation": account.reputation.consecutive,
            "reputation_detail": {
                "consecutive": account.reputation.consecutive,
                "verified": account.reputation.verified,
                "failed": account.reputation.failed,
            },
            "balance": await self.state.store.balance(sender),
            "entries": [e.to_dict() for e in entries],
            "rejected": await self.state.store.rejected_work(sender, limit),
            # From the whole ledger: a busy node has thousands of entries a day, not ``limit``.
            "earned_today": await store.earned_since(sender, now - now % 86400),
            "work_hourly": await store.work_earned_by_period(sender, now, 3600, 24),
            "work_daily": await store.work_earned_by_period(sender, now, 86400, 7),
            "work": await self.state.store.work_counts(sender),
        }


def job_json(job: Any) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "state": job.state,
        "reason": job.reason,
        "sentences": job.sentences,
        "fee": job.fee,
        "submitted_ts": job.submitted_ts,
        "finished_ts": job.finished_ts,
    }


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
        # From acceptance to the deadline: what accepting an offer leaves to finish it.
        "duration_s": state.duration_s,
        "reward": view.reward_base_units,
        "reward_text": view.reward_text,
        "achievement": view.achievement,
        "action": view.action,
        "description": view.progress_text,
    }
