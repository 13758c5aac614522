"""Accept, start, claim, stake and unstake are written to the node's log; one refusal wording."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from core.api.commands import AcceptQuest, ClaimQuest, Stake, StartQuest, Unstake
from core.errors import CommandError
from core.node.commands import CommandHost, NodeCommands
from core.node.link import NetworkLink
from core.node.store import NodeStore

RECORDED = Path(__file__).parents[2] / "tui" / "console" / "data" / "coordinator_answers.json"


class RecordedLink:
    """The parts of ``NetworkLink`` the handlers use, answered from the recording."""

    def __init__(self) -> None:
        self.answers = json.loads(RECORDED.read_text(encoding="utf-8"))["answers"]
        self.benchmark_units = 0

    async def request(self, method: str, params: dict[str, Any], wait_s: float = 10.0) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        for answer in self.answers:
            if answer["method"] == method and answer["params"] == params and "result" in answer:
                return answer["result"]
        raise CommandError(f"no recorded answer for {method} {params}")

    def refresh_soon(self) -> None:
        pass

    async def request_benchmark_unit(self) -> None:
        self.benchmark_units += 1


class Host:
    store: NodeStore | None = None

    def __init__(self) -> None:
        self.link: NetworkLink | None = cast(NetworkLink, RecordedLink())
        self.logged: list[tuple[str, str, str, dict[str, Any] | None]] = []

    async def snapshot(self) -> Any: ...

    async def run_benchmark(self, *, quick: bool = True, join: bool = False) -> Any: ...

    async def emit_log(
        self, level: Any, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        self.logged.append((level, kind, message, data))


def quest_id(prefix: str) -> str:
    answers = json.loads(RECORDED.read_text(encoding="utf-8"))["answers"]
    quests = next(a for a in answers if a["method"] == "quests")["result"]["quests"]
    return str(next(q["id"] for q in quests if q["id"].startswith(prefix)))


async def test_game_actions_are_logged() -> None:
    host = Host()
    commands = NodeCommands(cast(CommandHost, host))
    await commands.run(AcceptQuest(id="weekly-compute"))
    await commands.run(ClaimQuest(id="benchmark-suite"))
    await commands.run(Stake(amount=10 * 10**9))
    await commands.run(Unstake(amount=10 * 10**9))
    assert [(lv, kind) for lv, kind, _m, _d in host.logged] == [("info", "game")] * 4
    messages = [m for _lv, _k, m, _d in host.logged]
    assert messages[0] == "accepted Weekly compute"
    assert messages[1].startswith("claimed Benchmark suite")
    assert messages[2] == "staked 10 OMNIT (staked now 100 OMNIT)"
    assert messages[3] == "unstaked 10 OMNIT (staked now 90 OMNIT)"
    data = [d for _lv, _k, _m, d in host.logged]
    assert data[0] == {"quest": quest_id("weekly-compute"), "action": "accepted"}


async def test_start_before_accepting_says_not_accepted() -> None:
    host = Host()
    link = cast(RecordedLink, host.link)
    quests = next(a for a in link.answers if a["method"] == "quests")["result"]["quests"]
    bench = next(q for q in quests if q["action"] == "bench")
    bench["state"] = "offered"  # as it was before the recording accepted it
    commands = NodeCommands(cast(CommandHost, host))
    # The same words as the game's own refusal to claim an offer (core/game/quests.py).
    with pytest.raises(CommandError, match=rf"^quest {bench['id']}: not accepted$"):
        await commands.run(StartQuest(id="benchmark-suite"))
    assert host.logged == [] and link.benchmark_units == 0
