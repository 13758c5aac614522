"""Data contribution and validation over a real Mosquitto: a coordinator and four nodes.

Datasets (images, texts) contributed, validated by two agreeing validators and paid;
duplicates (within a dataset and of records already in the network) not paid; a dishonest
validator outvoted by a third and not paid; an interrupted upload resumed; the seasonal and
monthly boards and the Data Validator of the Month award; bad requests refused.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import io
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from core.api.commands import (
    AcceptQuest,
    CommitData,
    GetDataRecords,
    GetDatasets,
    GetQuests,
    OfferData,
    PutData,
    ReportData,
    TakeDataTask,
)
from core.calendar import month_id, period_at, season_id
from core.coordinator.service import Coordinator, CoordinatorSettings
from core.errors import CommandError
from core.game import default_rules
from core.node import data_work
from core.node.data_work import contribute, validate_one
from core.node.service import Node
from core.protocol.data import parse_manifest_line
from core.transport.mqtt import cancel_and_wait
from kernels.data import Dataset
from tests.helpers.broker import MosquittoProcess
from tests.integration.test_network import node_for, wait_until

pytestmark = pytest.mark.broker

RULES = default_rules()
DATA = RULES.data
# One verified unit is record enough here (the network's rules ask for ten).
TEST_RULES = dataclasses.replace(
    RULES, quest_rules=dataclasses.replace(RULES.quest_rules, min_verified_units=1)
)


async def read_local(path: Path) -> Dataset:
    return await data_work.read_local(
        path, None, max_bytes=DATA.max_dataset_bytes, max_records=DATA.max_dataset_records
    )


@contextlib.asynccontextmanager
async def network(tmp_path: Path, url: str) -> AsyncIterator[tuple[Coordinator, list[Node]]]:
    settings = CoordinatorSettings(
        data_dir=tmp_path / "coord",
        broker_url=url,
        task_interval_s=1.0,
        unit_seconds=0.1,
        board_interval_s=0.2,
        rules=TEST_RULES,
    )
    async with Coordinator(settings) as coordinator:
        task = asyncio.create_task(coordinator.run())
        try:
            await asyncio.wait_for(coordinator.connected.wait(), 10)
            async with contextlib.AsyncExitStack() as stack:
                nodes = [
                    await stack.enter_async_context(
                        node_for(tmp_path / name, url, name=name, first_benchmark=False)
                    )
                    for name in ("alice", "bob", "carol", "dave")
                ]
                store = coordinator.store
                assert store is not None

                async def all_verified() -> bool:
                    counts = [await store.verified_since(n.node_id, 0.0) for n in nodes]
                    return all(verified >= 1 for verified, _ in counts)

                await wait_until(all_verified, within=60, what="a verified unit from each node")
                yield coordinator, nodes
        finally:
            coordinator.close()
            await cancel_and_wait(task)


def image_bytes(seed: int, fmt: str = "PNG", size: int = 48) -> bytes:
    rng = random.Random(seed)
    # 8 x 8 blocks of colour, scaled up: a structure a resized copy keeps.
    blocks = Image.frombytes("RGB", (8, 8), rng.randbytes(8 * 8 * 3))
    image = blocks.resize((size, size), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def image_folder(root: Path, seeds: dict[str, list[int]]) -> Path:
    for label, label_seeds in seeds.items():
        (root / label).mkdir(parents=True)
        for seed in label_seeds:
            (root / label / f"{seed:03d}.png").write_bytes(image_bytes(seed))
    return root


async def ledger(coordinator: Coordinator, ref_prefix: str) -> dict[str, int]:
    assert coordinator.store is not None
    async with coordinator.store.db.execute(
        "SELECT account, SUM(amount) FROM ledger WHERE ref LIKE ? GROUP BY account",
        (ref_prefix + "%",),
    ) as cur:
        return {r[0]: int(r[1]) for r in await cur.fetchall()}


def false_near_copies(
    report: dict[str, Any], records: list[tuple[str, int, str]]
) -> dict[str, Any]:
    """A dishonest validator: two distinct records called near copies of the first (more
    than the tolerance; nothing the coordinator can check without an encoder or pHash)."""
    taken = set(report["duplicates"]) | set(report["near_duplicates"])
    fresh = [h for h, _size, _label in records if h not in taken]
    near = report["near_duplicates"] | {fresh[1]: fresh[0], fresh[2]: fresh[0]}
    return report | {"near_duplicates": near}


def call_one_invalid(report: dict[str, Any], records: list[tuple[str, int, str]]) -> dict[str, Any]:
    """A dishonest validator: one good record called invalid, the label counts made to fit
    (so it passes the coordinator's own checks and only the comparison catches it)."""
    taken = set(report["invalid"]) | set(report["duplicates"]) | set(report["near_duplicates"])
    hash_, _size, label = next(r for r in records if r[0] not in taken)
    counts = dict(report["label_counts"])
    counts[label] -= 1
    invalid = report["invalid"] | {hash_: "does not decode"}
    return report | {"invalid": invalid, "label_counts": counts}


async def test_datasets_are_validated_by_agreeing_validators_and_paid(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with network(tmp_path, mosquitto.url) as (coordinator, nodes):
        alice, bob, carol, dave = nodes
        folder = image_folder(tmp_path / "pets", {"cat": [1, 2, 3, 4], "dog": [5, 6, 7]})
        # An exact copy under another name and a resized JPEG copy: neither is paid.
        (folder / "dog" / "copy.png").write_bytes(image_bytes(5))
        resized = Image.open(io.BytesIO(image_bytes(6))).resize((72, 72))
        resized.convert("RGB").save(folder / "dog" / "near.jpg", "JPEG", quality=90)
        done = await contribute(alice, "pets", await read_local(folder), licence="CC-BY-4.0")
        assert done.registered is not None and done.registered.records == 9
        assert done.registered.labels == {"cat": 4, "dog": 5}

        # The contributor cannot validate its own dataset.
        own = await alice.command(TakeDataTask(dataset="pets"))
        assert own.task_id is None

        # Bob takes the data-validation quest: accepted reports are what advance it.
        accepted = await bob.command(AcceptQuest(id="data-validation"))
        assert accepted.quest.kind == "validate-records"
        first = await validate_one(bob, dataset="pets", kinds=["image-classification"], encode=None)
        assert first is not None and first.outcome.state == "waiting"
        assert len(first.report["duplicates"]) == 1
        assert len(first.report["near_duplicates"]) == 1
        # A second task for bob on the same dataset: none (one seat per validator).
        assert (await bob.command(TakeDataTask(dataset="pets"))).task_id is None
        second = await validate_one(
            carol, dataset="pets", kinds=["image-classification"], encode=None
        )
        assert second is not None and second.outcome.state == "validated"
        quests = (await bob.command(GetQuests())).quests
        quest = next(q for q in quests if q.id == accepted.quest.id)
        assert quest.progress.current == 9  # the records of the accepted report
        assert quest.state == ("completed" if quest.progress.target <= 9 else "in_progress")

        paid = await ledger(coordinator, "dval:")
        assert paid == {
            bob.node_id: DATA.validator_reward * 9,
            carol.node_id: DATA.validator_reward * 9,
        }
        # 9 records: 1 exact copy and 1 near copy are not paid.
        assert await ledger(coordinator, "dcon:") == {alice.node_id: DATA.contributor_reward * 7}

        # Dave's dataset repeats two of alice's records: those are already in the network.
        again = image_folder(tmp_path / "more", {"cat": [1, 11, 12], "dog": [5, 15, 16]})
        await contribute(dave, "more-pets", await read_local(again))
        three = await validate_one(bob, dataset="more-pets", kinds=[], encode=None)
        four = await validate_one(
            carol, dataset="more-pets", kinds=[], encode=None, tamper=false_near_copies
        )
        assert three is not None and four is not None
        assert four.outcome.state == "disputed"
        # A third validator decides: it agrees with bob; carol is not paid.
        five = await validate_one(alice, dataset="more-pets", kinds=[], encode=None)
        assert five is not None and five.outcome.state == "validated"
        paid = await ledger(coordinator, "dval:")
        assert paid[bob.node_id] == DATA.validator_reward * (9 + 6)
        assert paid[carol.node_id] == DATA.validator_reward * 9
        assert paid[alice.node_id] == DATA.validator_reward * 6
        assert (await ledger(coordinator, "dcon:"))[dave.node_id] == DATA.contributor_reward * 4
        game = coordinator.game
        assert game is not None
        assert (await game.account(carol.node_id)).reputation.consecutive == 0

        listing = await dave.command(GetDatasets())
        more = next(d for d in listing.datasets if d.name == "more-pets")
        assert more.state == "validated" and more.accepted == 4 and more.paid_records == 4
        states = {v.node_id: v.state for v in more.validators}
        assert states == {
            bob.node_id: "agreed",
            carol.node_id: "disagreed",
            alice.node_id: "agreed",
        }

        # The boards: seasonal and monthly, and the monthly award when the month ends.
        store = coordinator.store
        assert store is not None
        now = time.time()
        earned = await ledger(coordinator, "d")  # dval: and dcon: entries
        expected = sorted(earned.items(), key=lambda item: -item[1])
        # Alice contributed 7 paid records and validated 6: she leads.
        assert [node for node, _ in expected] == [
            alice.node_id,
            bob.node_id,
            carol.node_id,
            dave.node_id,
        ]
        for period, board in (
            (season_id(now), "data-validators"),
            (month_id(now), "data-validators-monthly"),
        ):
            rows, _total = await store.leaderboard(board, period)
            assert [(r.node_id, r.amount) for r in rows] == expected
        await game.roll_over(now)  # the first roll-over only marks where awards start
        awards = await game.roll_over(period_at("month", now).end + 1)
        monthly = [a for a in awards if a["category"] == "data-validators-monthly"]
        assert [a["node_id"] for a in monthly][:2] == [alice.node_id, bob.node_id]
        assert monthly[0]["rank"] == 1 and "Month" in monthly[0]["collectible"]


def noise_png(seed: int, side: int = 240) -> bytes:
    """An image that does not compress: ~170 KB, so an upload takes several pieces."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def test_uploads_resume_and_bad_requests_are_refused(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    async with network(tmp_path, mosquitto.url) as (coordinator, nodes):
        alice, bob, carol, dave = nodes
        folder = tmp_path / "noise"
        for label in ("a", "b"):
            (folder / label).mkdir(parents=True)
            for i in range(4):
                (folder / label / f"{i}.png").write_bytes(noise_png(hash((label, i)) % 1000))
        total = sum(p.stat().st_size for p in folder.rglob("*.png"))
        assert total > 3 * (384 << 10)

        # Interrupted after about a third: nothing is registered, the upload is kept.
        with pytest.raises(CommandError, match="stopped"):
            await contribute(
                alice,
                "noise",
                await read_local(folder),
                stop_after_bytes=total // 3,
            )
        listing = await alice.command(GetDatasets())
        assert listing.datasets == () and listing.upload is not None
        resumed = await contribute(alice, "noise", await read_local(folder))
        assert resumed.registered is not None and resumed.registered.records == 8
        assert 0 < resumed.bytes_sent < total  # only what was missing went again
        assert [d.name for d in (await bob.command(GetDatasets())).datasets] == ["noise"]
        # The staging space is shared by every node: a new upload it cannot hold is refused.
        coordinator.settings.data_staging_bytes = total // 2
        with pytest.raises(CommandError, match="upload space is full"):
            await contribute(bob, "noise-too", await read_local(folder))
        coordinator.settings.data_staging_bytes = 1 << 30

        # The same name from another node; too many records; a commit with bytes missing.
        with pytest.raises(CommandError, match="already registered"):
            await contribute(bob, "noise", await read_local(folder))
        fake = [f"{i:064x}:10:x" for i in range(DATA.max_dataset_records + 1)]
        with pytest.raises(CommandError, match="over this network's limit"):
            await bob.command(OfferData(dataset="huge", kind="text-classification", records=fake))
        offered = await bob.command(
            OfferData(dataset="ghost", kind="text-classification", records=fake[:2])
        )
        with pytest.raises(CommandError, match="not received"):
            await bob.command(CommitData(upload_id=offered.upload_id))
        with pytest.raises(CommandError, match="do not match"):
            wrong = base64.b64encode(b"0123456789").decode()
            await bob.command(PutData(upload_id=offered.upload_id, pieces=[f"{0:064x}:0:{wrong}"]))

        # A validator: records it was not given, in a fetch and in a report.
        task = await carol.command(TakeDataTask(dataset="noise"))
        assert task.task_id is not None and len(task.records) == 8
        stranger = f"{7:064x}"
        with pytest.raises(CommandError, match="not in validation task"):
            await carol.command(GetDataRecords(task_id=task.task_id, want=[f"{stranger}:0"]))
        report = {"invalid": {stranger: "bad"}, "label_counts": {"a": 4, "b": 4}, "total": 8}
        with pytest.raises(CommandError, match="did not give"):
            await carol.command(ReportData(task_id=task.task_id, report=json.dumps(report)))
        with pytest.raises(CommandError, match="not this node's"):
            await bob.command(ReportData(task_id=task.task_id, report=json.dumps(report)))
        with pytest.raises(CommandError, match="label counts"):
            bad = {"label_counts": {"a": 5, "b": 3}, "total": 8}
            await carol.command(ReportData(task_id=task.task_id, report=json.dumps(bad)))
        # A report that passes those checks but calls a good record invalid: the
        # coordinator decodes a sample of the records itself (here, all eight).
        records = [parse_manifest_line(line) for line in task.records]
        honest = {"label_counts": {"a": 4, "b": 4}, "total": 8}
        lazy = call_one_invalid(
            {"invalid": {}, "duplicates": {}, "near_duplicates": {}, **honest}, records
        )
        with pytest.raises(CommandError, match="own check of record"):
            await carol.command(ReportData(task_id=task.task_id, report=json.dumps(lazy)))
        with pytest.raises(CommandError, match="disagreed: nothing to do"):
            await carol.command(ReportData(task_id=task.task_id, report=json.dumps(honest)))
        game = coordinator.game
        assert game is not None
        assert (await game.account(carol.node_id)).reputation.failed == 1
        # Carol's seat went to another validator: dave fetches the records (several answers,
        # each record checked against its hash) and reports.
        honest_one = await validate_one(dave, dataset="noise", kinds=[], encode=None)
        assert honest_one is not None and honest_one.outcome.state == "waiting"
        assert honest_one.wire_bytes > total
        # Nothing was paid for any of it.
        assert await ledger(coordinator, "dval:") == {}
        assert await ledger(coordinator, "dcon:") == {}


SPORT = [
    "The striker scored twice in the second half of the match.",
    "Our team won the basketball tournament on Saturday.",
    "She ran the marathon in under three hours.",
    "The tennis final went to a fifth set.",
    "The goalkeeper saved a penalty in the last minute.",
]
COOKING = [
    "Simmer the tomato sauce for twenty minutes.",
    "Knead the bread dough until it is smooth and elastic.",
    "Fry the onions in butter until golden.",
    "Season the soup with salt and a little pepper.",
    "Bake the cake at 180 degrees for forty minutes.",
]


async def test_a_text_dataset_is_validated_with_the_encoder(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    from kernels.backend import numpy_backend
    from kernels.inference import ModelMissing, SentenceEncoder, find_model_dir, load_model

    try:
        model = load_model(find_model_dir(None, {}), numpy_backend())
    except ModelMissing as err:
        pytest.skip(f"model package not installed ({err})")
    encode = SentenceEncoder(model, workers=1).encode
    rows = [{"text": t, "label": "sport"} for t in SPORT]
    rows += [{"text": t, "label": "cooking"} for t in COOKING]
    rows.append({"text": SPORT[0], "label": "sport"})  # an exact duplicate
    rows.append({"text": COOKING[1].upper(), "label": "cooking"})  # a near duplicate
    rows.append({"text": "Whisk the eggs with sugar and flour.", "label": "sport"})  # mislabelled
    path = tmp_path / "topics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    async with network(tmp_path, mosquitto.url) as (coordinator, nodes):
        alice, bob, carol, _dave = nodes
        await contribute(alice, "topics", await read_local(path), licence="CC0")
        kinds = ["text-classification"]
        first = await validate_one(bob, dataset=None, kinds=kinds, encode=encode)
        second = await validate_one(carol, dataset=None, kinds=kinds, encode=encode)
        assert first is not None and second is not None
        assert second.outcome.state == "validated"
        report = second.report
        assert len(report["duplicates"]) == 1 and len(report["near_duplicates"]) == 1
        assert len(report["outliers"]) == 1
        assert report["label_counts"] == {"cooking": 6, "sport": 6}
        # 13 records: the exact and the near duplicate are not paid; the outlier is.
        assert await ledger(coordinator, "dcon:") == {alice.node_id: DATA.contributor_reward * 11}
        per_validator = DATA.validator_reward * 13
        assert await ledger(coordinator, "dval:") == {
            bob.node_id: per_validator,
            carol.node_id: per_validator,
        }
