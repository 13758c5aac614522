"""The operator's ``announce``: through the coordinator's store, refused with reasons."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import pytest

from core.coordinator.game_store import GameService
from core.coordinator.operator import STORE_FILE, NoCoordinatorStore, announce_event
from core.coordinator.store import CoordinatorStore
from core.game import EventError


async def test_announce_stores_the_event_the_rules_allow(tmp_path: Path) -> None:
    async with CoordinatorStore(tmp_path / STORE_FILE):
        pass  # the coordinator created its store
    now = time.time()
    start = now + 3 * 86400
    event = await announce_event(
        tmp_path, kind="network-expansion", factor=Fraction(2), start=start, hours=6, now=now
    )
    assert event.name == "Network Expansion" and event.end == start + 6 * 3600
    async with CoordinatorStore(tmp_path / STORE_FILE) as store:
        assert [e.id for e in await GameService(store).events()] == [event.id]
    with pytest.raises(EventError):
        # Starting now: not announced in advance.
        await announce_event(tmp_path, kind="late", factor=Fraction(2), start=now, hours=1)


async def test_announce_needs_the_coordinators_store(tmp_path: Path) -> None:
    with pytest.raises(NoCoordinatorStore, match="no coordinator store at"):
        await announce_event(tmp_path, kind="x", factor=Fraction(2), start=0.0, hours=1)
    assert not (tmp_path / STORE_FILE).exists()
