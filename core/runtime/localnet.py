"""The one-command local network: an embedded broker and the coordinator, in this process.

With no broker configured, ``omnitensor`` and ``omnitensor --headless`` start one of these
on a loopback port and join it, so a newcomer sees the whole network work with no set-up.
``omnitensor devnet --port P`` runs only this, for other nodes on the machine to join.
The broker lets in only clients with its random password, kept in ``DATA_DIR/broker-password``
(mode 0600): other users of the machine cannot join.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.config import Config
from core.coordinator.service import Coordinator, CoordinatorSettings
from core.datadir import prepare_data_dir
from core.game import GameRules, default_rules
from core.node.service import Node
from core.transport.embedded_broker import EmbeddedBroker
from core.transport.mqtt import cancel_and_wait

log = logging.getLogger("omnitensor.localnet")

BROKER_PASSWORD_FILE = "broker-password"  # noqa: S105  (a file name)


class LocalNetwork:
    """``async with LocalNetwork(data_dir) as net:`` then join ``net.url``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        task_interval_s: float = 10.0,
    ) -> None:
        self.data_dir = data_dir
        self.broker = EmbeddedBroker(
            host=host, port=port, password_file=data_dir / BROKER_PASSWORD_FILE
        )
        self.coordinator = Coordinator(
            CoordinatorSettings(
                data_dir=data_dir,
                broker_url="",  # set once the broker has its port
                task_interval_s=task_interval_s,
                rules=local_rules(),
                starter_grants=True,  # a test network: newcomers can submit a job at once
            )
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self.broker.url

    @property
    def coordinator_key(self) -> str:
        return self.coordinator.node_id

    @property
    def password_file(self) -> Path:
        """The file (mode 0600) holding the broker's password, for other nodes to join."""
        return self.data_dir / BROKER_PASSWORD_FILE

    def join_config(self, config: Config) -> Config:
        """``config`` with this network's broker login and coordinator key, for a node."""
        broker = self.broker.client_config(config.broker)
        return dataclasses.replace(
            config, broker=dataclasses.replace(broker, coordinator_key=self.coordinator_key)
        )

    async def __aenter__(self) -> LocalNetwork:
        prepare_data_dir(self.data_dir)  # the password file lives there
        await self.broker.start()
        try:
            self.coordinator.settings.broker_url = self.broker.url
            self.coordinator.settings.broker = self.broker.client_config()
            await self.coordinator.__aenter__()
        except BaseException:
            await self.broker.stop()
            raise
        self._task = asyncio.create_task(self.coordinator.run(), name="localnet.coordinator")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.coordinator.connected.wait(), 10)
        log.info("local network: broker %s, coordinator %s", self.url, self.coordinator_key[:12])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self.coordinator.close()
            await cancel_and_wait(self._task)
        await self.coordinator.__aexit__(None, None, None)
        await self.broker.stop()


def local_rules() -> GameRules:
    """The game's rules for a one-machine demo network: Sybil gates relaxed.

    On a network of one user there is nobody to split identities against, and a newcomer
    should see a quest pay after the first verified unit, not after a week of work.
    """
    rules = default_rules()
    gates = dataclasses.replace(
        rules.quest_rules, min_verified_units=1, max_payout_share_of_work=Fraction(10**6)
    )
    return dataclasses.replace(rules, quest_rules=gates)


async def open_node(
    config: Config, stack: contextlib.AsyncExitStack, *, nvml: Any | None = None
) -> Node:
    """Start a node on ``stack`` and put it on its network.

    With a broker configured, the node joins it. Without one, the local network (embedded
    broker and coordinator, in ``DATA_DIR/localnet``) starts too and the node joins it, its
    coordinator key pinned. The node's data dir lock is taken first, so a second node on the
    same data dir fails before starting a second local network.
    """
    node = await stack.enter_async_context(Node(config, nvml=nvml))
    if config.broker.url:
        node.join_network(config.broker.url, mode="remote")
        return node
    net = await stack.enter_async_context(LocalNetwork(config.data_dir / "localnet"))
    node.config = net.join_config(node.config)  # the broker's password
    node.join_network(net.url, mode="local", coordinator_key=net.coordinator_key)
    # Leave before the local broker stops, so shutdown does not look like an outage.
    stack.push_async_callback(node.leave_network)
    return node
