"""Record the real coordinator's answers for the console's network tests.

    python -m tests.tui.console.record_network        # writes data/coordinator_answers.json

Runs the local network (embedded broker and the real coordinator, in this process) and a
real node with the console tests' fixed key, drives them into a state with something in
every section (verified work, a stake, a unit that failed verification and was slashed, an
active and an upcoming multiplier event, quests offered, in progress and completed, a
season with ranks), then asks the coordinator what the node asks it and saves each answer
exactly as it arrived (the JSON ``result`` of its ``response``, before the node decodes it).

``tests/tui/console/conftest.py`` replays these answers to a real node through the node's own
request path, so the console's network tests see what a coordinator sends, not shapes
written by hand. Re-record after changing what the coordinator answers (the replay fails
loudly when a recorded answer no longer decodes).

Three steps set state up directly rather than by play, all in the coordinator's own ledger
and rules: a grant, so the node can stake (CPU work earns far too little in a minute), the
two multiplier events, announced as if a day earlier (events need 24 h of notice), and a
governance proposal (the operator's ``propose``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.api.commands import GetQuests, Stake, StartQuest
from core.coordinator.governance import GovernanceBook
from core.errors import CommandError
from core.game import MultiplierEvent
from core.game.boards import BOARDS
from core.money import parse_omnit
from core.node.fake_nvml import FakeNvml
from core.node.service import Node
from core.runtime.localnet import LocalNetwork
from tests.tui.console.conftest import node_config, write_fixed_identity

DATA = Path(__file__).parent / "data" / "coordinator_answers.json"
HOUR = 3600.0

# The methods the node asks while the console runs, with the parameters it sends.
QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("ping", {}),
    ("wallet", {}),
    ("quests", {}),
    ("season", {}),
    ("events", {}),
    ("jobs", {}),
    # Whole boards (the replay cuts the pages the console asks for from these).
    *[("leaderboard", {"category": category, "offset": 0, "limit": 100}) for category in BOARDS],
    ("proposals", {}),
]


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


class Recorder:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.answers: list[dict[str, Any]] = []

    async def ask(self, method: str, params: dict[str, Any]) -> Any:
        """Ask the coordinator as the node does; keep the answer (or the refusal) as sent."""
        link = self.node.link
        assert link is not None
        try:
            result = await link.request(method, params)
        except CommandError as exc:
            self.answers.append({"method": method, "params": params, "error": str(exc)})
            return None
        self.answers.append({"method": method, "params": params, "result": result})
        return result


async def fail_one_unit(node: Node) -> None:
    """The node skips half of its next unit (garbage blocks): the coordinator rejects it."""
    import kernels.work_unit as work_unit

    store = node.store
    assert store is not None
    real = work_unit.compute_unit
    skipped: list[str] = []

    def compute_half(backend: Any, spec: Any, **kwargs: Any) -> Any:
        result = real(backend, spec, **kwargs)
        if skipped:
            return result
        skipped.append(spec.seed.hex())
        other = real(backend, replace(spec, seed=bytes(32)), **kwargs)
        leaves = result.levels[0].copy()
        leaves[len(leaves) // 2 :] = other.levels[0][len(leaves) // 2 :]
        return work_unit.unit_from_leaf_digests(spec, leaves)

    work_unit.compute_unit = compute_half  # type: ignore[assignment]
    try:

        async def rejected() -> bool:
            return (await store.work_counters())["work.rejected"] >= 1

        await wait_for(rejected, "a rejected unit")
    finally:
        work_unit.compute_unit = real  # type: ignore[assignment]


async def record() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        net = LocalNetwork(root / "net", task_interval_s=0.2)
        net.coordinator.settings.unit_seconds = 0.3
        net.coordinator.settings.board_interval_s = 0.5
        async with net:
            node_dir = root / "node"
            write_fixed_identity(node_dir)
            config = net.join_config(node_config(node_dir))
            async with Node(
                config,
                nvml=FakeNvml.with_gpus(1),
                network_url=net.url,
                network_mode="local",
                resend_interval=0.5,
            ) as node:
                await play(net, node)
                recorder = Recorder(node)
                now = time.time()
                for method, params in QUERIES:
                    await recorder.ask(method, params)
                quests = {q["id"].split(":")[0]: q for q in recorder.answers[2]["result"]["quests"]}
                # An offered quest accepted; claims of a quest in progress and a completed one.
                await recorder.ask("quest.accept", {"id": quests["weekly-compute"]["id"]})
                await recorder.ask("quest.claim", {"id": quests["compute-sprint"]["id"]})
                await recorder.ask("quest.claim", {"id": quests["benchmark-suite"]["id"]})
                await recorder.ask("bench.challenge", {})
                # Refused on a one-node network (a job needs two workers), and an unknown job.
                await recorder.ask("job.submit", {"texts": ["a sentence to embed"]})
                await recorder.ask("job.result", {"job_id": "j0"})
                await recorder.ask("stake", {"amount": parse_omnit("10")})
                await recorder.ask("unstake", {"amount": parse_omnit("10")})
                await record_data(recorder)
                # Refused: the node holds no season award, so no governance weight.
                await recorder.ask("vote", {"proposal_id": "gov-1", "option": "Yes"})
                return {
                    "note": "Recorded by `python -m tests.tui.console.record_network`; replayed "
                    "by tests/tui/console/conftest.py. Do not edit by hand: re-record.",
                    "recorded_at": now,
                    "node_id": node.node_id,
                    "coordinator_id": net.coordinator_key,
                    "answers": recorder.answers,
                }


async def record_data(recorder: Recorder) -> None:
    """A dataset of two texts offered and sent; a third offered and not (the commit is
    refused); a validation task (none: a one-node network); refusals of a fetch and a report."""
    import base64
    import hashlib

    texts = [b"a first sentence", b"a second sentence"]
    lines = [f"{hashlib.sha256(t).hexdigest()}:{len(t)}:demo" for t in texts]
    offer = {"dataset": "demo-texts", "kind": "text-classification", "records": lines}
    offered = await recorder.ask("data.offer", {**offer, "licence": "CC0"})
    upload_id = offered["upload_id"]
    pieces = [f"{hashlib.sha256(t).hexdigest()}:0:{base64.b64encode(t).decode()}" for t in texts]
    await recorder.ask("data.put", {"upload_id": upload_id, "pieces": pieces})
    await recorder.ask("data.commit", {"upload_id": upload_id})
    missing = f"{hashlib.sha256(b'never sent').hexdigest()}:10:demo"
    second = await recorder.ask("data.offer", {**offer, "dataset": "half", "records": [missing]})
    await recorder.ask("data.commit", {"upload_id": second["upload_id"]})
    await recorder.ask("data.task", {})
    await recorder.ask("data.get", {"task_id": "dv0", "want": [f"{'0' * 64}:0"]})
    await recorder.ask("data.report", {"task_id": "dv0", "report": "{}"})
    await recorder.ask("datasets", {"limit": 100})


async def play(net: LocalNetwork, node: Node) -> None:
    """Bring the network into a state with something in every section."""
    store, coordinator = node.store, net.coordinator
    assert store is not None and node.link is not None
    link = node.link

    async def verified(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return (await store.work_counters())["work.acknowledged"] >= count

        return check

    await wait_for(await verified(3), "three verified units")
    # Funds to stake (set-up), then a stake through the node's own command.
    await coordinator.state.store.add_entry(
        account=node.node_id,
        amount=parse_omnit("1000"),
        kind="award",
        reason="welcome grant",
        ref="recording-grant",
    )
    await node.command(Stake(amount=parse_omnit("100")))
    # An event running now and one tomorrow (announced, for the rules, a day before).
    now = time.time()
    for kind, name, factor, start, hours in (
        ("network-expansion", "Network expansion", Fraction(2), now - HOUR, 6.0),
        ("stress-test", "Stress test", Fraction(3, 2), now + 26 * HOUR, 2.0),
    ):
        announced = start - 25 * HOUR
        event = MultiplierEvent(
            id=f"ev-{kind}",
            kind=kind,
            name=name,
            factor=factor,
            start=start,
            end=start + hours * HOUR,
            announced_at=announced,
        )
        await coordinator.state.game.announce(event, announced)
    # A governance proposal put by the operator, open for a week.
    await GovernanceBook(coordinator.state.store).add_proposal(
        title="Raise the stake cap",
        text="Double the free task value next season.",
        options=["Yes", "No", "Abstain"],
        start=now - HOUR,
        end=now + 7 * 24 * HOUR,
        now=now - HOUR,
    )
    # Quests: one progressing by work, the benchmark one completed by a verified unit.
    quests = (await node.command(GetQuests())).quests
    by_def = {q.id.split(":")[0]: q for q in quests}
    await link.request("quest.accept", {"id": by_def["compute-sprint"].id})
    await link.request("quest.accept", {"id": by_def["benchmark-suite"].id})
    await node.command(StartQuest(id=by_def["benchmark-suite"].id))
    # Work proven wrong: rejected, slashed.
    await fail_one_unit(node)
    done = (await store.work_counters())["work.acknowledged"]
    await wait_for(await verified(done + 3), "work after the failure")

    async def ranked() -> bool:
        season = await link.request("season", {})
        return bool(season["ranks"]["gpu-contributors"]["rank"])

    await wait_for(ranked, "a rank on the season's board")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    data = asyncio.run(record())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(data['answers'])} answers to {args.out}")


if __name__ == "__main__":
    main()
