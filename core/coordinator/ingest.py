"""Work in, verdicts and receipts out: commitment, challenge, proof, verification, credit.

A unit's life (docs/work-units.md): the node commits to a Merkle root over its result's
blocks; only then does the coordinator draw the blocks to check, from a secret only it
holds; the node answers with their Merkle paths; the coordinator recomputes the sampled
blocks from the seed and checks them against the root. Every unit is checked this way: a
failed check forfeits the unit and slashes the stake, a late one is forfeited.

Messages are queued as they arrive (a bounded queue: when it is full a message is dropped,
and the node's outbox sends it again) and handled a batch at a time. A batch's verdicts are
written in one SQLite transaction before its receipts go out; a message seen twice changes
nothing and gets the stored answer again, so a node that missed a receipt or a challenge
(broker restart, node killed) is made whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

from core.coordinator.scheduler import Scheduler, unit_spec
from core.coordinator.state import CoordinatorState
from core.coordinator.work_records import Credit, Unit, Verdict
from core.game import MultiplierEvent, combined_factor
from core.game.rates import pay_for_flops
from core.identity import short_id
from core.money import omnit_text
from core.protocol import (
    DEFAULT_TOPICS,
    Challenge,
    Message,
    Receipt,
    WorkCommit,
    WorkProof,
)
from kernels.work_proof import challenge_indices, verify

log = logging.getLogger("omnitensor.coordinator")

# Messages about a unit this long past its deadline are late: the unit is forfeited.
DEADLINE_GRACE_S = 30.0
QUEUE_MAX = 10_000
# No device delivers more: a unit answered faster than this rate allows is credited only
# for the work that fits in the wall time it covered.
MAX_NODE_FLOPS = 2e15
COVER_GRACE_S = 5.0  # a verified unit vouches for its node this long past the next issue

WorkMessage = tuple[Message, WorkCommit | WorkProof]


@dataclass(frozen=True)
class _Check:
    unit: Unit
    proof: bytes


class Ingest:
    """Owns the work queue and the verify thread; ``run()`` drains the queue in batches."""

    def __init__(self, state: CoordinatorState, scheduler: Scheduler, secret: bytes) -> None:
        self.state = state
        self.scheduler = scheduler
        self._secret = secret
        self.queue: asyncio.Queue[WorkMessage] = asyncio.Queue(QUEUE_MAX)
        self._verify_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")

    def close(self) -> None:
        self._verify_thread.shutdown(wait=True, cancel_futures=True)

    def offer(self, message: Message, data: WorkCommit | WorkProof) -> None:
        """Queue a work message; when the queue is full it is dropped (the node re-sends)."""
        try:
            self.queue.put_nowait((message, data))
        except asyncio.QueueFull:
            self.state.stats["dropped"] += 1

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.state.settings.batch_max and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self.process_batch(batch)
            except Exception:
                # Nothing was committed for this batch (one transaction): its nodes re-send
                # and get verdicts then. The loop itself must live on.
                log.exception("a batch of %d work messages failed; dropped", len(batch))

    # -- one batch ---------------------------------------------------------------------------

    async def process_batch(self, batch: list[WorkMessage], now: float | None = None) -> None:
        now = time.time() if now is None else now
        store = self.state.store
        units = await store.units(data.task_id for _m, data in batch)
        known = await store.verdicts((m.sender, data.task_id) for m, data in batch)
        receipts: dict[tuple[str, str], Verdict] = {}
        late: dict[str, Unit] = {}
        commits: dict[str, tuple[Unit, str]] = {}  # task -> (unit, root): newly committed
        challenges: dict[str, tuple[Unit, str]] = {}
        checks: dict[str, _Check] = {}
        for message, data in batch:
            unit = units.get(data.task_id)
            if unit is None or unit.node_id != message.sender:
                # Another node's unit (or none): it changes nothing, not even a reply.
                self.state.stats["dropped"] += 1
                continue
            key = (unit.node_id, unit.task_id)
            if key in known:
                receipts[key] = known[key]  # a duplicate: the stored answer again
                continue
            if now > unit.deadline_ts + DEADLINE_GRACE_S:
                late[unit.task_id] = unit
                continue
            committed = commits.get(unit.task_id)
            root = committed[1] if committed else unit.root
            if isinstance(data, WorkCommit):
                if root is None:
                    commits[unit.task_id] = (unit, data.root)
                    challenges[unit.task_id] = (unit, data.root)
                elif root == data.root:
                    challenges[unit.task_id] = (unit, root)  # lost challenge: the same again
                else:
                    log.info("unit %s keeps its first root; another ignored", unit.task_id)
            elif root is None:
                log.info("proof before commitment for unit %s ignored", unit.task_id)
            else:
                # A proof must answer the root it committed to; anything else fails below.
                proof = data.proof_bytes() if data.root == root else b""
                checks[unit.task_id] = _Check(_with_root(unit, root), proof)
        if commits:
            await store.commit_roots(
                (unit.node_id, task_id, root, now) for task_id, (unit, root) in commits.items()
            )
        results = await self._verify(list(checks.values()))
        events = await self.state.game.events() if results else []
        stakes = await self.state.game.stakes(c.unit.node_id for c, _ in results)
        judged = [self._judge(check, outcome, now, events, stakes) for check, outcome in results]
        judged += [
            (Verdict(u.node_id, u.task_id, False, "deadline missed", 0, 0, None), None)
            for u in late.values()
        ]
        if judged:
            judged_units = {**units, **{c.unit.task_id: c.unit for c in checks.values()}}
            await self._record(judged, judged_units, now, receipts)
        sends = [self._challenge(unit, root) for unit, root in challenges.values()]
        sends += [self._receipt(verdict) for verdict in receipts.values()]
        # Published together (PUBACKs overlap). An unsent answer is not lost: the node
        # re-sends its message and gets the stored answer again.
        await asyncio.gather(*sends, return_exceptions=True)

    async def _verify(self, checks: list[_Check]) -> list[tuple[_Check, tuple[bool, str]]]:
        if not checks:
            return []
        loop = asyncio.get_running_loop()
        verdicts = await loop.run_in_executor(self._verify_thread, self._verify_all, checks)
        return list(zip(checks, verdicts, strict=True))

    def _verify_all(self, checks: list[_Check]) -> list[tuple[bool, str]]:
        """Runs in the verify thread: each proof against its unit's spec, root and challenge."""
        out: list[tuple[bool, str]] = []
        for check in checks:
            unit = check.unit
            assert unit.root is not None
            root = bytes.fromhex(unit.root)
            spec = unit_spec(unit)
            indices = challenge_indices(self._secret, spec, root, self.state.settings.samples)
            verdict = verify(spec, root, indices, check.proof)
            out.append((verdict.ok, "" if verdict.ok else f"verification failed: {verdict.reason}"))
        return out

    def _judge(
        self,
        check: _Check,
        outcome: tuple[bool, str],
        now: float,
        events: list[MultiplierEvent],
        stakes: dict[str, int],
    ) -> tuple[Verdict, Credit | None]:
        ok, reason = outcome
        unit = check.unit
        if not ok:
            return Verdict(unit.node_id, unit.task_id, False, reason, 0, 0, None), None
        # Credit what was verified, for the wall time it covered (no more than physics allows).
        covered = max(now - unit.issued_ts, 0.0)
        flops = min(unit.flops, int(covered * MAX_NODE_FLOPS))
        at = unit.committed_ts or now
        factor = combined_factor(events, at)
        value = pay_for_flops(flops, factor)
        credited, capped = self.state.game.cap_for_stake(value, stakes.get(unit.node_id, 0))
        tflops = Fraction(flops, 10**12)
        credit = Credit(
            reason=(
                f"verified work unit {unit.task_id} ({unit.m}x{unit.k}x{unit.n}, "
                f"{float(tflops):.6g} TFLOP), multiplier {factor}x"
                + (f"; {capped}" if capped else "")
            ),
            data={"task_id": unit.task_id, "flops": flops, "purpose": unit.purpose},
        )
        return Verdict(unit.node_id, unit.task_id, True, "", flops, credited, None), credit

    async def _record(
        self,
        judged: list[tuple[Verdict, Credit | None]],
        units: dict[str, Unit],
        now: float,
        receipts: dict[tuple[str, str], Verdict],
    ) -> None:
        stored, fresh = await self.state.store.record_verdicts(judged, now)
        for verdict in stored:
            receipts[(verdict.node_id, verdict.task_id)] = verdict
        self.state.boards_dirty = True
        # Side effects (reputation, quests, slashing, sizing) for new verdicts only: a
        # duplicate in the same batch must change nothing.
        new = [v for v in stored if (v.node_id, v.task_id) in fresh]
        for verdict in new:
            self.state.stats["verified" if verdict.accepted else "rejected"] += 1
            unit = units[verdict.task_id]
            if verdict.accepted:
                await self.scheduler.on_verified(unit, now)
            else:
                self.scheduler.on_failed(unit, missed_deadline=verdict.reason == "deadline missed")
        await self._game_after(new, units, now)

    async def _game_after(
        self, verdicts: list[Verdict], units: dict[str, Unit], now: float
    ) -> None:
        """Reputation, quests, badges for verified work; a slash for work proven wrong."""
        game = self.state.game
        credited: list[tuple[str, str, float, float]] = []
        for verdict in verdicts:
            unit = units[verdict.task_id]
            if verdict.accepted:
                # Online from the unit's issue until the next could be issued (with grace).
                until = now + self.state.settings.task_interval_s + COVER_GRACE_S
                self.state.covered.setdefault(verdict.node_id, []).append((unit.issued_ts, until))
                # TFLOP-hours = FLOPs / 1e12 / 3600: as ``tflops`` for one second.
                credited.append((verdict.node_id, verdict.task_id, verdict.flops / 1e12, 1.0))
                if unit.purpose == "benchmark":
                    await game.on_benchmark(verdict.node_id, now, now)
            elif verdict.reason.startswith("verification failed"):
                slashed = await game.on_failed_work(
                    verdict.node_id, verdict.task_id, verdict.reason
                )
                log.warning(
                    "unit %s from %s failed verification; slashed %s",
                    verdict.task_id,
                    short_id(verdict.node_id),
                    omnit_text(slashed),
                )
        if credited:
            await game.on_verified_batch(credited, now)

    # -- answers -----------------------------------------------------------------------------

    async def _challenge(self, unit: Unit, root: str) -> None:
        indices = challenge_indices(
            self._secret, unit_spec(unit), bytes.fromhex(root), self.state.settings.samples
        )
        message = Challenge(
            task_id=unit.task_id, recipient=unit.node_id, root=root, indices=list(indices)
        )
        await self.state.publish(
            DEFAULT_TOPICS.node_task(unit.node_id), Challenge.TYPE, message, False
        )

    async def _receipt(self, verdict: Verdict) -> None:
        receipt = Receipt(
            task_id=verdict.task_id,
            recipient=verdict.node_id,
            accepted=verdict.accepted,
            reason=verdict.reason[:512],
            flops=verdict.flops,
            credited_base_units=verdict.credited,
            entry_id=verdict.entry_id,
        )
        await self.state.publish(
            DEFAULT_TOPICS.node_receipt(verdict.node_id), Receipt.TYPE, receipt, False
        )

    # -- deadlines ----------------------------------------------------------------------------

    async def expire(self, now: float | None = None) -> int:
        """Forfeit every open unit past its deadline (no slash: a timeout proves nothing)."""
        now = time.time() if now is None else now
        late = [
            u for u in await self.state.store.open_units() if now > u.deadline_ts + DEADLINE_GRACE_S
        ]
        if not late:
            return 0
        judged: list[tuple[Verdict, Credit | None]] = [
            (Verdict(u.node_id, u.task_id, False, "deadline missed", 0, 0, None), None)
            for u in late
        ]
        receipts: dict[tuple[str, str], Verdict] = {}
        await self._record(judged, {u.task_id: u for u in late}, now, receipts)
        for unit in late:
            log.info("unit %s of %s missed its deadline", unit.task_id, short_id(unit.node_id))
        await asyncio.gather(*(self._receipt(v) for v in receipts.values()), return_exceptions=True)
        return len(late)


def _with_root(unit: Unit, root: str) -> Unit:
    if unit.root == root:
        return unit
    return Unit(**{**unit.__dict__, "root": root, "state": "committed"})
