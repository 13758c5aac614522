"""One signed identity on the broker: connect, presence with a last will, reconnect, publish.

Both ends of the network run one: the node's link and the coordinator. The session owns the
MQTT client and the reconnect loop (exponential backoff with jitter); its owner supplies what
differs through callbacks: what to do once connected, with each decoded message, and when the
connection drops. Inbound payloads are decoded and their signatures checked here; a payload
that fails is dropped with one log line (and counted) and the session keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt

from core.config import BrokerConfig
from core.errors import ProtocolError
from core.identity import Identity
from core.protocol import Message, SequenceCounter, decode, encode, presence_messages
from core.textsafe import redact_url
from core.transport.mqtt import Backoff, make_client, parse_broker_url, raise_if_cancelling

log = logging.getLogger("omnitensor.transport")

OnMessage = Callable[[Message, str, bool], Awaitable[None]]
OnConnected = Callable[[], Awaitable[None]]
OnDisconnected = Callable[[BaseException, float], Awaitable[None]]
Admit = Callable[[str], bool]


class NotConnected(aiomqtt.MqttError):
    """A publish was attempted while the session has no connection."""


@dataclass(frozen=True)
class SessionSettings:
    """Where and as whom a session connects, and what it listens to."""

    url: str
    broker: BrokerConfig
    client_id: str
    presence_topic: str
    subscriptions: Sequence[str]


class PeerSession:
    """Run with ``await session.run()`` (until ``close()`` and a cancel); publish while up."""

    def __init__(
        self,
        settings: SessionSettings,
        identity: Identity,
        seqs: SequenceCounter,
        *,
        on_message: OnMessage,
        on_connected: OnConnected | None = None,
        on_disconnected: OnDisconnected | None = None,
        admit: Admit | None = None,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.seqs = seqs
        self.display_url = redact_url(parse_broker_url(settings.url).url)  # no credentials
        self.connected = asyncio.Event()
        self.closing = False
        self.drops: Counter[str] = Counter()
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._admit = admit
        self._client: aiomqtt.Client | None = None
        self._backoff = Backoff()

    @property
    def is_up(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        """Ask ``run()`` to end; the caller then cancels its task."""
        self.closing = True

    async def run_with(self, loops: Mapping[str, Coroutine[Any, Any, None]]) -> None:
        """``run()``, with background ``loops`` (name -> coroutine) that live as long as it.

        They outlive single connections (they wait or skip while the link is down) and are
        cancelled, and awaited, when the session ends.
        """
        tasks = [asyncio.create_task(loop, name=name) for name, loop in loops.items()]
        try:
            await self.run()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def run(self) -> None:
        """Stay connected, reconnecting with backoff, until closed and cancelled."""
        while not self.closing:
            try:
                await self._connect_and_listen()
            except aiomqtt.MqttError as exc:
                await self._after_drop(exc)
            except Exception as exc:
                # A bug must not take the peer off the network: log it whole, reconnect.
                self._stop_if_closing()
                log.exception("session on %s failed; restarting it", self.display_url)
                await self._after_drop(exc)

    async def _after_drop(self, exc: BaseException) -> None:
        self._stop_if_closing()
        self.connected.clear()
        delay = self._backoff.next_delay()
        if self._on_disconnected is not None:
            await self._on_disconnected(exc, delay)
        await asyncio.sleep(delay)

    def _stop_if_closing(self) -> None:
        # An error raised while cancelling (aiomqtt's DISCONNECT failing, or a TaskGroup
        # un-cancelling on Python 3.11) can mask the cancellation: the flag cannot be masked.
        if self.closing:
            raise asyncio.CancelledError
        raise_if_cancelling()

    async def _connect_and_listen(self) -> None:
        settings = self.settings
        online, offline = presence_messages(self.identity, self.seqs)
        client = make_client(
            settings.broker,
            settings.url,
            identifier=settings.client_id,
            will=aiomqtt.Will(settings.presence_topic, offline, qos=1, retain=True),
        )
        async with client:
            self._client = client
            try:
                for topic in settings.subscriptions:
                    await client.subscribe(topic, qos=1)
                await client.publish(settings.presence_topic, online, qos=1, retain=True)
                self._backoff.reset()
                self.connected.set()
                if self._on_connected is not None:
                    await self._on_connected()
                async for mqtt_message in client.messages:
                    await self._receive(mqtt_message)
                raise aiomqtt.MqttError("message stream ended")
            finally:
                self._client = None
                self.connected.clear()

    async def _receive(self, mqtt_message: aiomqtt.Message) -> None:
        topic = mqtt_message.topic.value
        payload = mqtt_message.payload
        if not isinstance(payload, bytes | bytearray):
            self.drops["not-bytes"] += 1
            return
        if self._admit is not None and not self._admit(topic):
            # Over its sender's rate: dropped before the costly part (signature checks).
            self.drops["rate-limited"] += 1
            return
        try:
            message = decode(payload)
        except ProtocolError as exc:
            self.drops[exc.reason] += 1
            log.warning("dropped message on %s: %s", topic[:200], exc)
            return
        await self._on_message(message, topic, bool(mqtt_message.retain))

    async def publish(self, topic: str, type_name: str, data: Any, *, retain: bool = False) -> None:
        """Sign ``data`` as ``type_name`` and publish it (QoS 1); NotConnected when down."""
        client = self._client
        if client is None:
            raise NotConnected("not connected")
        payload = encode(self.identity, self.seqs.next(), type_name, data)
        await client.publish(topic, payload, qos=1, retain=retain)

    async def publish_raw(self, topic: str, payload: bytes) -> None:
        """Publish bytes signed earlier (the node's outbox); NotConnected when down."""
        client = self._client
        if client is None:
            raise NotConnected("not connected")
        await client.publish(topic, payload, qos=1)
