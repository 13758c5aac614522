"""What a network's operator does to the coordinator's store from outside it (``announce``).

The command line calls these instead of opening ``coordinator.db`` itself: the store's file
and its rules stay the coordinator's.
"""

from __future__ import annotations

import secrets
import time
from fractions import Fraction
from pathlib import Path

from core.coordinator.game_store import GameService
from core.coordinator.store import CoordinatorStore
from core.errors import StoreError
from core.game import MultiplierEvent

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
    path = data_dir / STORE_FILE
    if not path.exists():
        raise NoCoordinatorStore(f"no coordinator store at {path}")
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
