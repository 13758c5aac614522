"""What a network's operator does to the coordinator's store from outside it (``announce``,
``propose``).

The command line calls these instead of opening ``coordinator.db`` itself: the store's file
and its rules stay the coordinator's.
"""

from __future__ import annotations

import secrets
import time
from fractions import Fraction
from pathlib import Path

from core.coordinator.game_store import GameService
from core.coordinator.governance import GovernanceBook
from core.coordinator.store import CoordinatorStore
from core.errors import StoreError
from core.game import MultiplierEvent
from core.game.governance import Proposal

STORE_FILE = "coordinator.db"


class NoCoordinatorStore(StoreError):
    """The data dir holds no coordinator store (not the coordinator's data dir)."""


async def announce_event(
    data_dir: Path,
    *,
    kind: str,
    factor: Fraction,
    start: float,
    hours: float,
    name: str | None = None,
    now: float | None = None,
) -> MultiplierEvent:
    """Announce a multiplier event in the coordinator's store in ``data_dir``.

    NoCoordinatorStore when there is none there; EventError when the game's rules refuse the
    event (too soon, above the cap...).
    """
    path = store_path(data_dir)
    now = time.time() if now is None else now
    event = MultiplierEvent(
        id=f"ev-{int(now)}-{secrets.token_hex(3)}",
        kind=kind,
        name=name or kind.replace("-", " ").title(),
        factor=factor,
        start=start,
        end=start + hours * 3600,
        announced_at=now,
    )
    async with CoordinatorStore(path) as store:
        await GameService(store).announce(event, now)
    return event


async def propose(
    data_dir: Path,
    *,
    title: str,
    text: str,
    options: list[str],
    start: float,
    hours: float,
    now: float | None = None,
) -> Proposal:
    """Put a proposal to the nodes in the coordinator's store in ``data_dir``; the running
    coordinator publishes it at its next board tick.

    NoCoordinatorStore when there is none there; GovernanceError when the proposal is refused
    (no title, fewer than two options, duplicates, a window that ends before it starts...).
    """
    path = store_path(data_dir)
    now = time.time() if now is None else now
    async with CoordinatorStore(path) as store:
        return await GovernanceBook(store).add_proposal(
            title=title, text=text, options=options, start=start, end=start + hours * 3600, now=now
        )


def store_path(data_dir: Path) -> Path:
    path = data_dir / STORE_FILE
    if not path.exists():
        raise NoCoordinatorStore(f"no coordinator store at {path}")
    return path
