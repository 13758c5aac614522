"""A copier over a real Mosquitto with no read ACLs: it sniffs an honest worker's
commitment and reveal on the broker and sends them as its own. The commitment binds the node
id, so the copy never opens: the copier is rejected and slashed, the job still delivered."""

from __future__ import annotations

from pathlib import Path

from core.api.commands import GetJobResult, SubmitJob
from core.coordinator.pricing import MODEL
from core.protocol import (
    DEFAULT_TOPICS,
    Hello,
    InferCommit,
    InferReveal,
    InferTask,
    Presence,
    Receipt,
    RevealCall,
)
from tests.adversarial.conftest import Hostile
from tests.helpers.broker import MosquittoProcess
from tests.integration.test_inference_network import network
from tests.integration.test_network import wait_until


async def test_a_copied_commitment_and_reveal_never_open(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with (
        network(tmp_path, mosquitto.url) as (coordinator, (alice, bob, carol)),
        Hostile(mosquitto.port) as mallory,
    ):
        await mallory.send(DEFAULT_TOPICS.node_presence(mallory.node_id), Presence(online=True))
        await mallory.send(
            DEFAULT_TOPICS.node_hello(mallory.node_id),
            Hello(
                name="mallory",
                version="0.1.0",
                backend="numpy",
                device="cpu",
                gpus=[],
                claimed_tflops=0.0,
                models=[MODEL],
            ),
            retain=True,
        )
        await mallory.subscribe(DEFAULT_TOPICS.any_node("work"))  # no ACLs on this broker
        await wait_until(lambda: len(coordinator.desk.eligible(0.0)) == 4, what="mallory serving")
        # Only alice and mallory serve while the job is placed; the tie then goes to bob or
        # carol.
        nodes = coordinator.state.nodes
        for other in (bob, carol):
            nodes[other.node_id].models = frozenset()
        job = await alice.command(SubmitJob(texts=["The river floods the valley."] * 3))
        for other in (bob, carol):
            nodes[other.node_id].models = frozenset({MODEL})

        task = (await mallory.wait_for(lambda m: isinstance(m.data, InferTask))).data
        assert isinstance(task, InferTask)

        commit = await mallory.wait_for(
            lambda m: (
                m.sender == alice.node_id
                and isinstance(m.data, InferCommit)
                and m.data.task_id == task.task_id
            )
        )
        assert isinstance(commit.data, InferCommit)
        await mallory.send(DEFAULT_TOPICS.node_work(mallory.node_id), commit.data)
        await mallory.wait_for(lambda m: isinstance(m.data, RevealCall), within=60)
        reveal = await mallory.wait_for(
            lambda m: (
                m.sender == alice.node_id
                and isinstance(m.data, InferReveal)
                and m.data.task_id == task.task_id
            )
        )
        assert isinstance(reveal.data, InferReveal)
        await mallory.send(DEFAULT_TOPICS.node_work(mallory.node_id), reveal.data)

        verdict = await mallory.wait_for(lambda m: isinstance(m.data, Receipt), within=60)
        assert isinstance(verdict.data, Receipt) and not verdict.data.accepted
        assert "does not open its commitment" in verdict.data.reason

        async def delivered() -> bool:
            result = await alice.command(GetJobResult(job_id=job.job_id))
            return result.state == "delivered"

        await wait_until(delivered, within=90, what="the job delivered by alice and one more")
        result = await alice.command(GetJobResult(job_id=job.job_id))
        (only,) = result.tasks
        assert alice.node_id in only.workers and len(only.workers) == 2
        assert set(only.workers) <= {alice.node_id, bob.node_id, carol.node_id}
        assert mallory.node_id in only.rejected
