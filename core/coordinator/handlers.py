"""The coordinator's answers to node requests: boards, wallet, quests, season, stakes."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Any

import aiomqtt

from core.coordinator.ingest import MAX_PLAUSIBLE_TFLOPS
from core.coordinator.publishing import quest_view
from core.coordinator.state import CoordinatorState
from core.game import GameError, QuestState
from core.game.boards import BOARDS, board_period
from core.identity import short_id
from core.protocol import DEFAULT_TOPICS, Request, Response, raw_json

log = logging.getLogger("omnitensor.coordinator")


class RequestHandlers:
    """One handler per request method; ``handle`` answers, whatever happens."""

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state

    async def handle(self, sender: str, request: Request) -> None:
        """Answer one request with a signed response (an error response when it fails)."""
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
            await self.state.publish(
                DEFAULT_TOPICS.node_response(sender), Response.TYPE, response, False
            )

    async def _events_query(self, sender: str, params: dict[str, Any]) -> Any:
        return await self.state.game.events_view(time.time())

    def _capability(self, sender: str) -> float:
        node = self.state.nodes.get(sender)
        return node.tflops_claim if node is not None and node.tflops_claim > 0 else 0.0

    async def _quests_query(self, sender: str, params: dict[str, Any]) -> Any:
        now = time.time()
        states = await self.state.game.quests(sender, self._capability(sender) or 0.1, now)
        return {"quests": [quest_json(s, now) for s in states]}

    async def _quest_accept(self, sender: str, params: dict[str, Any]) -> Any:
        now = time.time()
        state = await self.state.game.accept_quest(sender, str(params.get("id", "")), now)
        return {"quest": quest_json(state, now), "message": f"accepted {state.title}"}

    async def _quest_claim(self, sender: str, params: dict[str, Any]) -> Any:
        result = await self.state.game.claim_quest(sender, str(params.get("id", "")), time.time())
        self.state.boards_dirty = True
        return result

    async def _season_query(self, sender: str, params: dict[str, Any]) -> Any:
        return await self.state.game.season_view(sender, time.time())

    async def _stake(self, sender: str, params: dict[str, Any]) -> Any:
        return await self.state.game.stake(sender, _amount(params))

    async def _unstake(self, sender: str, params: dict[str, Any]) -> Any:
        return await self.state.game.unstake(sender, _amount(params))

    async def _bench_report(self, sender: str, params: dict[str, Any]) -> Any:
        """A node ran the benchmark suite (its own Freivalds check passed): quest progress."""
        if params.get("verified") is not True:
            raise ValueError("only a verified benchmark counts")
        tflops = params.get("tflops")
        node = self.state.node(sender)
        if isinstance(tflops, int) and tflops > 0:
            node.tflops_claim = min(tflops / 1000.0, MAX_PLAUSIBLE_TFLOPS)
        now = time.time()
        await self.state.game.on_benchmark(sender, now, now)
        return {"message": "benchmark recorded"}

    async def _ping(self, sender: str, params: dict[str, Any]) -> Any:
        return {"coordinator": self.state.node_id, "ts": time.time()}

    async def _leaderboard_query(self, sender: str, params: dict[str, Any]) -> Any:
        category = str(params.get("category") or "gpu-contributors")
        if category not in BOARDS:
            raise ValueError(f"unknown category {category!r}; one of {', '.join(BOARDS)}")
        period = str(params.get("season") or board_period(category, time.time()))
        offset = min(max(0, int(params.get("offset") or 0)), 10**9)
        limit = min(max(1, int(params.get("limit") or 10)), 1000)
        rows, total = await self.state.store.leaderboard(
            category, period, offset=offset, limit=limit
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

    async def _wallet_query(self, sender: str, params: dict[str, Any]) -> Any:
        limit = min(max(1, int(params.get("limit") or 100)), 1000)
        entries = await self.state.store.entries(sender, limit)
        today = time.time() - time.time() % 86400
        account = await self.state.game.account(sender)
        return {
            "staked": account.staked,
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
            "earned_today": sum(e.amount for e in entries if e.ts >= today and e.amount > 0),
            "work": await self.state.store.work_counts(sender),
        }


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
