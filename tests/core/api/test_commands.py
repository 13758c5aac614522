"""The command table: one entry per command, typed parameters and results, clear refusals."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from core.api.commands import (
    COMMANDS,
    RESULTS,
    AcceptQuest,
    GetLeaderboard,
    GetWallet,
    Request,
    RunBench,
    convert_result,
    params_of,
    parse,
)
from core.api.network import Wallet
from core.api.views import BenchmarkResult
from core.errors import CommandError
from core.node.commands import NodeCommands
from core.node.link import NetworkLink
from core.node.store import NodeStore


def test_every_command_is_listed_once_with_its_result_type() -> None:
    assert len(COMMANDS) == len(set(COMMANDS.values())) == 26
    for name, request_type in COMMANDS.items():
        assert request_type.name == name
        assert isinstance(RESULTS[request_type], type)
    assert RESULTS[RunBench] is BenchmarkResult and RESULTS[GetWallet] is Wallet
    # The node's own log is "events"; the network's multiplier events are "multipliers".
    assert COMMANDS["multipliers"].coordinator_method == "events"
    assert COMMANDS["events"].coordinator_method is None


def test_the_node_has_a_handler_for_every_command() -> None:
    class Host:
        store: NodeStore | None = None
        link: NetworkLink | None = None

        async def snapshot(self) -> Any: ...

        async def run_benchmark(self, *, quick: bool = True, join: bool = False) -> Any: ...

        async def emit_log(
            self, level: Any, kind: str, message: str, data: dict[str, Any] | None = None
        ) -> None: ...

    commands = NodeCommands(Host())
    assert set(commands._handlers) == set(COMMANDS.values())


def test_parse_builds_typed_requests_from_names_and_json() -> None:
    assert parse("bench", b'{"quick": false}') == RunBench(quick=False)
    assert parse("bench", msgspec.Raw(b"")) == RunBench(quick=True)
    assert parse("quest.accept", {"id": "q1"}) == AcceptQuest(id="q1")
    board = GetLeaderboard(category="model-testers", limit=5)
    assert parse("leaderboard", msgspec.json.encode(board)) == board
    # What the coordinator's request carries: the parameters, None ones included.
    assert params_of(board)["limit"] == 5 and params_of(board)["offset"] is None


@pytest.mark.parametrize(
    ("name", "params", "error"),
    [
        ("no.such.command", {}, "unknown command 'no.such.command'"),
        ("bench", {"quik": True}, "bench: bad parameters: Object contains unknown field `quik`"),
        ("quest.claim", {}, "quest.claim: bad parameters: Object missing required field `id`"),
        ("stake", b'{"amount": "12"}', "stake: bad parameters: Expected `int`, got `str`"),
        ("events", {"limit": 0}, "events: bad parameters"),
    ],
)
def test_unknown_commands_and_bad_parameters_are_command_errors(
    name: str, params: Any, error: str
) -> None:
    with pytest.raises(CommandError) as raised:
        parse(name, params)
    assert str(raised.value).startswith(error)


def test_a_malformed_answer_is_a_command_error_naming_the_command() -> None:
    with pytest.raises(CommandError, match=r"^wallet: the coordinator sent a malformed answer"):
        convert_result(GetWallet, {"balance": "lots"}, source="the coordinator")
    with pytest.raises(CommandError, match="malformed"):
        convert_result(GetWallet, ["not", "a", "wallet"], source="the coordinator")


def test_requests_are_frozen_structs() -> None:
    request: Request[Any] = RunBench()
    with pytest.raises(AttributeError):
        request.quick = False  # type: ignore[attr-defined,misc]
