"""Quality rounds: short semantic-similarity tests of a node's encoder, at random times.

Each round mixes questions whose answer the coordinator knows with questions whose answer
it does not (their votes are kept for a consensus, not scored). The score is the share of
known answers right, and the latency is the coordinator's own clock from issue to answer.
A scored round credits a small reward per right answer on the ``model-testers`` board,
advances quality-round quests, and sets the node's tier: the inference desk sends tasks
only to tier 1 and up, tier 2 first.

The shipped question bank (``assets/quality/questions.json``) is public: it measures honest
nodes, but a cheat could look answers up. A production coordinator passes its own private
bank (``CoordinatorSettings.quality_bank``; docs/inference-network.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiomqtt

from core.coordinator.desk import MessageDesk
from core.coordinator.pricing import MODEL
from core.coordinator.state import CoordinatorState
from core.errors import ConfigError
from core.identity import short_id
from core.protocol import DEFAULT_TOPICS, QualityAnswer, QualityQuestion, QualityRound

log = logging.getLogger("omnitensor.coordinator")

ROUND_KNOWN = 6
ROUND_UNKNOWN = 2
ANSWER_WINDOW_S = 60.0  # a node loads its model for its first round: room for that
QUEUE_MAX = 1_000


def now_plus(interval: float) -> float:
    """When to look again at a node that may not have a round yet."""
    return time.time() + min(interval, 60.0)


def tier_for(accuracy: Fraction) -> int:
    """0: no inference tasks until a better round; 1: eligible; 2: preferred."""
    if accuracy >= Fraction(5, 6):
        return 2
    return 1 if accuracy >= Fraction(1, 2) else 0


@dataclass
class OpenRound:
    round_id: str
    node_id: str
    questions: list[Any]  # kernels.inference.quality.Question, answers included
    issued_ts: float
    deadline_ts: float


async def check_bank(path: Path) -> None:
    """Load a configured bank; ConfigError (one line, the file named) when it is unusable."""
    from kernels.inference import InferenceError
    from kernels.inference.quality import load_bank

    try:
        bank = await asyncio.to_thread(load_bank, path)
    except InferenceError as exc:
        raise ConfigError(f"quality bank: {exc}") from None
    known = sum(q.answer is not None for q in bank)
    if known < ROUND_KNOWN or len(bank) - known < ROUND_UNKNOWN:
        raise ConfigError(
            f"quality bank {path}: {known} known and {len(bank) - known} unknown questions; "
            f"a round needs {ROUND_KNOWN} and {ROUND_UNKNOWN}"
        )


class QualityDesk(MessageDesk[QualityAnswer]):
    """Issues rounds to nodes serving the model and scores their answers."""

    def __init__(self, state: CoordinatorState) -> None:
        super().__init__(state, QUEUE_MAX)
        self.open: dict[str, OpenRound] = {}
        self._bank: list[Any] | None = None

    async def bank(self) -> list[Any]:
        if self._bank is None:
            from kernels.inference.quality import load_bank

            bank = await asyncio.to_thread(load_bank, self.state.settings.quality_bank)
            self._bank = bank
            return bank
        return self._bank

    async def on_message(self, sender: str, data: QualityAnswer, now: float) -> None:
        await self.score(sender, data, now)

    async def tick(self, now: float) -> None:
        for round_ in [r for r in self.open.values() if now > r.deadline_ts]:
            await self._close(round_, "missed", now)
        if not self.state.is_connected():
            return
        ghost = self.state.settings.ghost_after_s
        for node_id, node in list(self.state.nodes.items()):
            if MODEL not in node.models or node.quality_open is not None:
                continue
            if not node.online or now - node.last_traffic >= ghost:
                continue
            if node.next_quality == 0.0:  # first seen: a round soon, not at once
                node.next_quality = now + random.uniform(0.1, 0.5) * self._interval()
            if node.next_quality <= now and await self._has_work_on_record(node_id):
                await self.issue(node_id, now)

    async def _has_work_on_record(self, node_id: str) -> bool:
        """The quests' sybil gate: rounds (and their board) only for nodes with verified work."""
        if await self.state.has_work_on_record(node_id):
            return True
        self.state.node(node_id).next_quality = now_plus(self._interval())
        return False

    def _interval(self) -> float:
        return self.state.settings.quality_interval_s

    async def issue(self, node_id: str, now: float) -> str:
        from kernels.inference.quality import draw_round

        node = self.state.node(node_id)
        node.next_quality = now + random.uniform(0.5, 1.5) * self._interval()
        questions = draw_round(
            await self.bank(), secrets.token_bytes(16), ROUND_KNOWN, ROUND_UNKNOWN
        )
        round_ = OpenRound(
            f"q{int(now * 1000):x}{secrets.token_hex(4)}",
            node_id,
            questions,
            now,
            now + ANSWER_WINDOW_S,
        )
        async with self.state.store.transaction() as db:
            await db.execute(
                "INSERT INTO quality_rounds (round_id, node_id, issued_ts, deadline_ts, questions,"
                " state) VALUES (?, ?, ?, ?, ?, 'sent')",
                (
                    round_.round_id,
                    node_id,
                    now,
                    round_.deadline_ts,
                    json.dumps([q.id for q in questions]),
                ),
            )
        self.open[round_.round_id] = round_
        node.quality_open = round_.round_id
        message = QualityRound(
            round_id=round_.round_id,
            recipient=node_id,
            questions=[
                QualityQuestion(id=q.id, query=q.query, candidates=list(q.candidates))
                for q in questions
            ],
            issued_ts=now,
            deadline_ts=round_.deadline_ts,
        )
        with contextlib.suppress(aiomqtt.MqttError):  # unsent: the round times out, unscored
            await self.state.publish(
                DEFAULT_TOPICS.node_task(node_id), QualityRound.TYPE, message, False
            )
        return round_.round_id

    async def score(self, sender: str, answer: QualityAnswer, now: float) -> None:
        from kernels.inference.quality import score_round

        round_ = self.open.get(answer.round_id)
        if round_ is None or round_.node_id != sender:
            return  # not this node's open round: changes nothing
        result = score_round(round_.questions, answer.answers)
        latency = now - round_.issued_ts
        rules = self.state.game.rules.inference
        reward = rules.quality_reward * result.correct
        note = f" ({result.reason})" if result.reason else ""
        reason = (
            f"quality round {round_.round_id}: {result.correct} of {result.known} known answers "
            f"right in {latency:.1f} s{note}"
        )
        async with self.state.store.transaction() as db:
            await db.execute(
                "UPDATE quality_rounds SET answers = ?, known = ?, correct = ?, latency_s = ?,"
                " state = 'scored' WHERE round_id = ? AND state = 'sent'",
                (
                    json.dumps({"answers": answer.answers, "votes": result.votes}),
                    result.known,
                    result.correct,
                    latency,
                    round_.round_id,
                ),
            )
            if reward > 0:
                await self.state.store._insert_entry(
                    account=sender,
                    amount=reward,
                    kind="reward",
                    reason=reason,
                    category="model-testers",
                    ref=round_.round_id,
                    ts=now,
                )
        self.open.pop(round_.round_id, None)
        node = self.state.node(sender)
        node.quality_open = None
        node.tier = tier_for(result.accuracy)
        self.state.boards_dirty = True
        if not result.refused:
            await self.state.game.on_quality_round(sender, round_.round_id, now)
        log.info("%s: %s, tier %d", short_id(sender), reason, node.tier)

    async def _close(self, round_: OpenRound, state: str, now: float) -> None:
        async with self.state.store.transaction() as db:
            await db.execute(
                "UPDATE quality_rounds SET state = ? WHERE round_id = ? AND state = 'sent'",
                (state, round_.round_id),
            )
        self.open.pop(round_.round_id, None)
        node = self.state.nodes.get(round_.node_id)
        if node is not None and node.quality_open == round_.round_id:
            node.quality_open = None
