"""Which coordinator this node listens to: a pinned key, from the config or first use.

The key comes from the config (``--coordinator-key``); without one, the first key heard on
``coordinator/presence`` is pinned only on the embedded local network or when the user asked
for it (``--trust-first-use``), and stored in the data dir with one warning. A different key
later is refused loudly, once per key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from core.api.events import LogLevel
from core.config import BrokerConfig, may_trust_first_use, untrusted_coordinator_line
from core.identity import short_id
from core.node.store import NodeStore

log = logging.getLogger("omnitensor.link")

PINNED_KEY_SETTING = "coordinator_key"

Say = Callable[[LogLevel, str], Awaitable[None]]  # (level, message) into the node's log


class CoordinatorPin:
    """``load()`` before use; ``admit(sender)`` for every coordinator presence heard."""

    def __init__(self, store: NodeStore, broker: BrokerConfig, *, local: bool, say: Say) -> None:
        self._store = store
        self._broker = broker
        self._local = local
        self._say = say
        self.key: str | None = None
        self._refused: set[str] = set()

    async def load(self) -> str | None:
        """The pinned key: the configured one (which replaces a stored one), else the stored."""
        configured = self._broker.coordinator_key
        stored = await self._store.get_setting(PINNED_KEY_SETTING)
        if configured:
            if stored and stored != configured:
                log.warning("coordinator key from the config replaces the pinned one")
            await self._store.set_setting(PINNED_KEY_SETTING, configured)
            self.key = configured
        else:
            self.key = stored
        return self.key

    async def admit(self, sender: str) -> bool:
        """True when ``sender`` is (or has just become) the pinned coordinator."""
        if self.key is None and not may_trust_first_use(self._broker, local=self._local):
            if sender not in self._refused:
                self._refused.add(sender)
                await self._say("error", untrusted_coordinator_line(sender))
            return False
        if self.key is None:
            self.key = sender
            await self._store.set_setting(PINNED_KEY_SETTING, sender)
            await self._say(
                "warning",
                f"trusting coordinator {short_id(sender)} on first use and pinning its key; "
                f"pin it explicitly with --coordinator-key {sender}",
            )
            return True
        if sender != self.key:
            if sender not in self._refused:
                self._refused.add(sender)
                await self._say(
                    "error",
                    f"REFUSED coordinator key {sender}: this node pinned {self.key}. If the "
                    "network really changed its coordinator, start the node with "
                    "--coordinator-key NEWKEY.",
                )
            return False
        return True
