"""The node's commands: one handler per request type of ``core.api.commands``.

Commands the coordinator answers are forwarded over the network link and its answer is
decoded into the command's view here, at the node's boundary: a malformed answer is a
``CommandError`` naming the command. Answers that are part of the game state the node keeps
refresh that cache; commands that change it ask for a refresh.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import msgspec

from core.api.commands import (
    COMMANDS,
    AcceptQuest,
    ClaimQuest,
    GetLog,
    GetQuests,
    GetSnapshot,
    QuestStarted,
    Request,
    RunBench,
    Stake,
    StartQuest,
    Unstake,
    convert_result,
    params_of,
)
from core.api.events import LogHistory, LogLevel
from core.api.network import Quest, QuestAccepted, QuestClaimed, StakeResult
from core.api.views import BenchmarkResult, NodeSnapshot
from core.errors import CommandError
from core.money import omnit_text
from core.node.store import NodeStore
from core.node.views import log_history

if TYPE_CHECKING:
    # The link (and the MQTT client under it) loads only when the node joins a network.
    from core.node.link import NetworkLink

R = TypeVar("R")
Handler = Callable[[Any], Awaitable[Any]]

NOT_ON_A_NETWORK = "this node is not on a network (no broker configured)"
COORDINATOR = "the coordinator"
# How long `quest start` waits for the coordinator to verify the benchmark unit.
QUEST_START_WAIT_S = 300.0


class CommandHost(Protocol):
    """What the handlers use of the node."""

    store: NodeStore | None
    link: NetworkLink | None

    async def snapshot(self) -> NodeSnapshot: ...

    async def run_benchmark(self, *, quick: bool = True, join: bool = False) -> BenchmarkResult:
        """Run the suite; ``join``: wait for one already running instead of refusing."""

    async def emit_log(
        self, level: LogLevel, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        """Record a node event (store, subscribers, log)."""


class NodeCommands:
    """``run(request)`` answers any command of the table (or raises CommandError)."""

    def __init__(self, node: CommandHost) -> None:
        self.node = node
        self._handlers: dict[type[Request[Any]], Handler] = {
            GetSnapshot: self._snapshot,
            RunBench: self._bench,
            GetLog: self._log,
            StartQuest: self._start_quest,
            AcceptQuest: self._quest_action,
            ClaimQuest: self._quest_action,
            Stake: self._stake,
            Unstake: self._stake,
        }
        for request_type in COMMANDS.values():
            if request_type.coordinator_method is not None:
                self._handlers.setdefault(request_type, self._forward)
        missing = [r.name for r in COMMANDS.values() if r not in self._handlers]
        assert not missing, f"commands without a handler: {missing}"

    async def run(self, request: Request[R]) -> R:
        handler = self._handlers.get(type(request))
        if handler is None:
            raise CommandError(f"unknown command {request.name!r}")
        # Each handler returns its request's result type (the table pairs them).
        return cast(R, await handler(request))

    def _link(self) -> NetworkLink:
        if self.node.link is None:
            raise CommandError(NOT_ON_A_NETWORK)
        return self.node.link

    async def _snapshot(self, request: GetSnapshot) -> NodeSnapshot:
        return await self.node.snapshot()

    async def _bench(self, request: RunBench) -> BenchmarkResult:
        return await self.node.run_benchmark(quick=request.quick)

    async def _log(self, request: GetLog) -> LogHistory:
        assert self.node.store is not None
        return log_history(await self.node.store.recent_events(request.limit))

    async def _forward(self, request: Request[Any]) -> Any:
        """Ask the coordinator; its answer, decoded, is the result."""
        link = self._link()
        method = request.coordinator_method
        assert method is not None
        answer = await link.request(method, params_of(request))
        view = convert_result(type(request), answer, source=COORDINATOR)
        if request.changes_game:
            link.refresh_soon()
        else:
            link.game.store(view)
        return view

    async def _quest_action(self, request: AcceptQuest | ClaimQuest) -> Any:
        """Accept or claim: the id may be short (``benchmark-suite`` without its period)."""
        quest = await self._quest(request.id)
        result = await self._forward(msgspec.structs.replace(request, id=quest.id))
        if isinstance(result, QuestAccepted | QuestClaimed):
            verb = "accepted" if isinstance(result, QuestAccepted) else "claimed"
            await self.node.emit_log(
                "info", "game", result.message, {"quest": quest.id, "action": verb}
            )
        return result

    async def _stake(self, request: Stake | Unstake) -> StakeResult:
        """Stake or unstake (the coordinator's ledger), written to the node's log."""
        result: StakeResult = await self._forward(request)
        verb = "staked" if isinstance(request, Stake) else "unstaked"
        await self.node.emit_log(
            "info",
            "game",
            f"{verb} {omnit_text(request.amount)} (staked now {omnit_text(result.staked)})",
            {"action": request.name, "amount": request.amount, "staked": result.staked},
        )
        return result

    async def _start_quest(self, request: StartQuest) -> QuestStarted:
        """A benchmark quest's action: a benchmark unit the coordinator issues and verifies."""
        link = self._link()
        quest = await self._quest(request.id)
        if quest.action != "bench":
            raise CommandError(f"quest {quest.id}: has no action to start; it progresses by work")
        if quest.state == "completed":
            return QuestStarted(message=f"{quest.title} is already complete: claim it")
        if quest.state not in ("accepted", "in_progress"):
            raise CommandError(
                f"quest {quest.id}: not accepted"
                if quest.state == "offered"
                else f"quest {quest.id}: {quest.state}, nothing to start"
            )
        await link.request_benchmark_unit()
        await self.node.emit_log(
            "info",
            "game",
            f"started {quest.title}: benchmark unit requested",
            {"quest": quest.id, "action": "started"},
        )
        # The quest completes when the coordinator has verified the unit this node computes.
        deadline = time.monotonic() + QUEST_START_WAIT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            quest = await self._quest(request.id)
            if quest.state == "completed":
                link.refresh_soon()
                return QuestStarted(message=f"benchmark unit verified for {quest.title}: claim it")
        raise CommandError(
            f"quest {quest.id}: the benchmark unit was not verified within "
            f"{QUEST_START_WAIT_S:g}s; it still counts if it is"
        )

    async def _quest(self, quest_id: str) -> Quest:
        answer = await self._link().request(GetQuests.coordinator_method or "quests", {})
        quests = convert_result(GetQuests, answer, source=COORDINATOR).quests
        return resolve_quest(quests, quest_id)


def resolve_quest(quests: tuple[Quest, ...], quest_id: str) -> Quest:
    """The quest ``quest_id`` names: its exact id, its id without the period suffix
    (``benchmark-suite`` for ``benchmark-suite:2026-Q4``) or a unique prefix of one.

    CommandError listing the candidates when several match, the closest when none does.
    """
    exact = [q for q in quests if q.id == quest_id]
    unperiod = [q for q in quests if q.id.split(":", 1)[0] == quest_id]
    prefix = [q for q in quests if q.id.startswith(quest_id)]
    for found in (exact, unperiod, prefix):
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(q.id for q in found)
            raise CommandError(f"quest {quest_id}: several quests match: {names}")
    ids = [q.id for q in quests]
    close = difflib.get_close_matches(quest_id, ids, n=1, cutoff=0.5)
    if close:
        hint = f"; did you mean {close[0]!r}?"
    elif ids:
        hint = f"; offered: {', '.join(ids)}"
    else:
        hint = " (no quests are offered right now)"
    raise CommandError(f"quest {quest_id}: not offered to this node{hint}")
