"""The node's link to the network: MQTT with a persistent session and a SQLite outbox.

Store-and-forward: every work result is written to the outbox in the same transaction as the
result itself, published (QoS 1) whenever the link is up, and deleted only when the
coordinator's signed receipt for it arrives: an application-level ack, not PUBACK, so a
result survives a broker restart, a coordinator crash and a ``kill -9`` of the node. While
offline the node keeps working; the outbox is flushed in order when the broker is back, and
pending entries are re-sent every ``resend_interval`` (the coordinator answers a duplicate
with its stored receipt).

The coordinator's key is pinned: from the config (``--coordinator-key``), else trusted on
first use from ``coordinator/presence`` and stored in the data dir with one warning. A
different key later is refused loudly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import aiomqtt

from core.api.client import JSON
from core.errors import CommandError, ProtocolError
from core.identity import short_id
from core.money import format_omnit
from core.protocol.envelope import (
    DEFAULT_TOPICS,
    Hello,
    InboundFilter,
    Leaderboard,
    Message,
    Receipt,
    Request,
    Response,
    SequenceCounter,
    TaskGemm,
    WorkResult,
    decode,
    encode,
    presence_messages,
)
from core.protocol.game import MultiplierEvents, QuestBoard, SeasonInfo
from core.transport.mqtt import Backoff, make_client, parse_broker_url, raise_if_cancelling

if TYPE_CHECKING:
    from core.node.service import Node

log = logging.getLogger("omnitensor.sync")

PINNED_KEY_SETTING = "coordinator_key"
REQUEST_TIMEOUT_S = 10.0


class NetworkLink:
    """Owned by a ``Node``; ``run()`` keeps it connected until cancelled."""

    def __init__(
        self,
        node: Node,
        url: str,
        *,
        mode: str = "remote",
        resend_interval: float = 30.0,
    ) -> None:
        self.node = node
        self.url = url
        # Shown in the snapshot and the log: never the credentials a URL may carry.
        self.display_url = parse_broker_url(url).url
        self.mode = mode  # "local" (the embedded local network) or "remote"
        self.resend_interval = resend_interval
        self.state = "connecting"
        self.closing = False
        self.since_ts = time.time()
        self.coordinator_online: bool | None = None
        self.pinned_key: str | None = None
        self._refused_keys: set[str] = set()
        self._client: aiomqtt.Client | None = None
        self._seqs: SequenceCounter | None = None
        self._filter = InboundFilter()
        self._flush_wanted = asyncio.Event()
        self._tasks: asyncio.Queue[TaskGemm] = asyncio.Queue()
        self._requests: dict[str, asyncio.Future[Response]] = {}
        self.leaderboards: dict[str, JSON] = {}
        self.wallet: JSON | None = None
        # The coordinator's answers the console shows, refreshed while connected.
        self.game_state: dict[str, JSON | None] = {
            "wallet": None,
            "quests": None,
            "season": None,
            "events": None,
        }
        self._refresh_wanted = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    async def prepare(self) -> None:
        """Load the pinned coordinator key and the sequence counter (before run)."""
        store = self.node.store
        assert store is not None
        configured = self.node.config.broker.coordinator_key
        pinned = await store.get_setting(PINNED_KEY_SETTING)
        if configured:
            if pinned and pinned != configured:
                log.warning("coordinator key from the config replaces the pinned one")
            self.pinned_key = configured
            await store.set_setting(PINNED_KEY_SETTING, configured)
        else:
            self.pinned_key = pinned
        self._filter = InboundFilter(coordinator_ids={self.pinned_key} if self.pinned_key else ())
        self._seqs = await asyncio.to_thread(SequenceCounter, self.node.config.data_dir / "seq")

    async def run(self) -> None:
        """Connect, reconnect with backoff and jitter, and work, until ``close()``."""
        await self.prepare()
        backoff = Backoff()
        # Both live as long as the link, not a connection; the flush loop waits for one.
        work = asyncio.create_task(self._work_loop(), name="sync.work")
        flush = asyncio.create_task(self._flush_loop(), name="sync.flush")
        refresh = asyncio.create_task(self._refresh_loop(), name="sync.refresh")
        try:
            while not self.closing:
                try:
                    await self._session(backoff)
                except aiomqtt.MqttError as exc:
                    self._stop_if_closing()
                    if self.state != "offline":
                        self._set_state("offline")
                        await self.node.emit_log(
                            "warning", "link", f"offline: broker {self.display_url} ({exc})"
                        )
                    await asyncio.sleep(backoff.next_delay())
                except Exception as exc:
                    self._stop_if_closing()
                    # A bug must not stop the node's work: log it whole and reconnect.
                    log.exception("network session failed")
                    self._set_state("offline")
                    await self.node.emit_log("error", "link", f"network session failed: {exc}")
                    await asyncio.sleep(backoff.next_delay())
        finally:
            for task in (work, flush, refresh):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def close(self) -> None:
        """Ask ``run()`` to end; the caller then cancels its task."""
        self.closing = True

    def _stop_if_closing(self) -> None:
        # An error raised while cancelling (aiomqtt's DISCONNECT failing, or a TaskGroup
        # un-cancelling on Python 3.11) can mask the cancellation: the flag cannot be masked.
        if self.closing:
            raise asyncio.CancelledError
        raise_if_cancelling()

    def _set_state(self, state: str) -> None:
        self.state = state
        self.since_ts = time.time()
        self.node.publish({"type": "link", **self.to_json()})

    def to_json(self) -> JSON:
        return {
            "mode": self.mode,
            "broker": self.display_url,
            "state": self.state,
            "since_ts": self.since_ts,
            "coordinator": self.pinned_key,
            "coordinator_online": self.coordinator_online,
        }

    async def _session(self, backoff: Backoff) -> None:
        identity = self.node.identity
        assert identity is not None and self._seqs is not None
        node_id = identity.node_id
        online, offline = presence_messages(identity, self._seqs)
        topics = DEFAULT_TOPICS
        client = make_client(
            self.node.config.broker,
            self.url,
            identifier=f"omnitensor-node-{node_id[:20]}",
            will=aiomqtt.Will(topics.node_presence(node_id), offline, qos=1, retain=True),
        )
        async with client:
            self._client = client
            try:
                for topic in topics.node_subscriptions(node_id):
                    await client.subscribe(topic, qos=1)
                await client.publish(topics.node_presence(node_id), online, qos=1, retain=True)
                await self._publish_hello()
                backoff.reset()
                self._set_state("connected")
                await self.node.emit_log("info", "link", f"connected to {self.display_url}")
                self._flush_wanted.set()
                self._refresh_wanted.set()
                async for message in client.messages:
                    await self._on_message(message)
                raise aiomqtt.MqttError("connection closed")
            finally:
                self._client = None

    async def _publish(
        self, topic: str, type_name: str, data: Any, *, retain: bool = False
    ) -> None:
        identity = self.node.identity
        if self._client is None or identity is None or self._seqs is None:
            raise CommandError("offline: not connected to the network")
        payload = encode(identity, self._seqs.next(), type_name, data)
        await self._client.publish(topic, payload, qos=1, retain=retain)

    def refresh_soon(self) -> None:
        self._refresh_wanted.set()

    def game_snapshot(self) -> JSON:
        """Snapshot sections for the console: wallet, quests, season, multiplier."""
        state = self.game_state
        wallet = state["wallet"] or self.wallet
        quests = state["quests"]
        return {
            "wallet": wallet,
            "quests": quests.get("quests") if quests else None,
            "season": state["season"],
            "multiplier": state["events"],
        }

    async def _refresh_loop(self) -> None:
        """Keep the console's game state fresh: every 10 s, and soon after a change."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh_wanted.wait(), 10.0)
            self._refresh_wanted.clear()
            if self._client is None:
                continue
            changed = False
            for method in ("wallet", "quests", "season", "events"):
                try:
                    answer = await self.request(method, {}, wait_s=5.0)
                except CommandError:
                    break
                if isinstance(answer, dict) and answer != self.game_state[method]:
                    self.game_state[method] = answer
                    changed = True
            if changed:
                self.node.publish({"type": "game"})
            # Debounce: a burst of receipts asks for one refresh, not one each.
            await asyncio.sleep(1.0)

    async def report_benchmark(self, result: JSON) -> None:
        """Tell the coordinator a verified benchmark ran (benchmark quests progress by it)."""
        fp32 = result.get("gemm", {}).get("fp32", {})
        params = {
            "verified": bool(result.get("verified")),
            # Milli-TFLOPS: request parameters are integers, never floats.
            "tflops": int(float(fp32.get("tflops", 0.0)) * 1000),
        }
        with contextlib.suppress(CommandError):
            await self.request("bench.report", params, wait_s=5.0)

    async def announce(self) -> None:
        """Re-send this node's hello (after a benchmark changed its capability)."""
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError, CommandError):
                await self._publish_hello()

    async def _publish_hello(self) -> None:
        assert self.node.store is not None
        last = await self.node.store.last_benchmark()
        tflops = (
            float(last.result.get("gemm", {}).get("fp32", {}).get("tflops", 0.0)) if last else 0.0
        )
        frame = self.node.frame
        gpus = [g.name or "?" for g in frame.gpus] if frame else []
        hello = Hello(
            name=self.node.display_name,
            version="0.1.0",
            backend=self.node.backend_name,
            device=(self.node.backend_device or "unknown")[:512],
            gpus=[g[:512] for g in gpus[:64]],
            gemm_tflops=max(0.0, tflops),
        )
        await self._publish(
            DEFAULT_TOPICS.node_hello(self.node.node_id), Hello.TYPE, hello, retain=True
        )

    # -- outbox --------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        """Publish pending outbox entries in order: on connect, on new work, and periodically."""
        store = self.node.store
        assert store is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_wanted.wait(), self.resend_interval)
            self._flush_wanted.clear()
            client = self._client
            if client is None:
                continue  # offline: the next connection sets the flag again
            try:
                for row in await store.outbox():
                    await client.publish(row.topic, row.payload, qos=1)
            except aiomqtt.MqttError:
                continue  # the connection dropped; the reconnect flushes again

    # -- inbound -------------------------------------------------------------------------

    async def _on_message(self, mqtt_message: aiomqtt.Message) -> None:
        topic = mqtt_message.topic.value
        payload = mqtt_message.payload
        if not isinstance(payload, bytes | bytearray):
            return
        try:
            message = decode(payload)
        except ProtocolError as exc:
            log.warning("dropped message on %s: %s", topic[:200], exc)
            return
        if topic == DEFAULT_TOPICS.coordinator_presence and not await self._check_pin(message):
            return
        if self._filter.accept(message, topic=topic, retained=mqtt_message.retain) is not None:
            return
        await self._dispatch(message, topic)

    async def _check_pin(self, message: Message) -> bool:
        """Pin the coordinator on first use; refuse any other key afterwards."""
        sender = message.sender
        if self.pinned_key is None:
            store = self.node.store
            assert store is not None
            self.pinned_key = sender
            await store.set_setting(PINNED_KEY_SETTING, sender)
            self._filter.coordinator_ids = frozenset({sender})
            await self.node.emit_log(
                "warning",
                "link",
                f"trusting coordinator {short_id(sender)} on first use and pinning its key; "
                f"pin it explicitly with --coordinator-key {sender}",
            )
            return True
        if sender != self.pinned_key:
            if sender not in self._refused_keys:
                self._refused_keys.add(sender)
                await self.node.emit_log(
                    "error",
                    "link",
                    f"REFUSED coordinator key {sender}: this node pinned {self.pinned_key}. "
                    "If the network really changed its coordinator, start the node with "
                    "--coordinator-key NEWKEY.",
                )
            return False
        return True

    async def _dispatch(self, message: Message, topic: str) -> None:
        data = message.data
        if isinstance(data, TaskGemm):
            await self._tasks.put(data)
        elif isinstance(data, Receipt):
            await self._on_receipt(data)
        elif isinstance(data, Response):
            future = self._requests.pop(data.request_id, None)
            if future is not None and not future.done():
                future.set_result(data)
        elif isinstance(data, Leaderboard):
            self.leaderboards[data.category] = {
                "category": data.category,
                "season": data.season,
                "entries": [
                    {
                        "rank": e.rank,
                        "node_id": e.node_id,
                        "name": e.name,
                        "amount": e.amount_base_units,
                    }
                    for e in data.entries
                ],
                "updated_ts": data.updated_ts,
            }
        elif isinstance(data, MultiplierEvents | QuestBoard | SeasonInfo):
            # Network state changed (a new event, a new period): refresh this node's views.
            self._refresh_wanted.set()
        elif topic == DEFAULT_TOPICS.coordinator_presence:
            online = bool(getattr(data, "online", False))
            was = self.coordinator_online
            self.coordinator_online = online
            if online and was is False:
                # The coordinator restarted: re-send what it may have lost.
                self._flush_wanted.set()
            self.node.publish({"type": "link", **self.to_json()})

    async def _on_receipt(self, receipt: Receipt) -> None:
        store = self.node.store
        assert store is not None
        settled = await store.apply_receipt(
            receipt.work_id,
            accepted=receipt.accepted,
            reason=receipt.reason,
            credited=receipt.credited_base_units,
            entry_id=receipt.entry_id,
        )
        if not settled:
            return
        if receipt.accepted:
            await self.node.emit_log(
                "info",
                "work",
                f"work {receipt.work_id} verified: credited "
                f"{format_omnit(receipt.credited_base_units, exact=True)} OMNIT",
                {"work_id": receipt.work_id, "credited": receipt.credited_base_units},
            )
        else:
            await self.node.emit_log(
                "warning",
                "work",
                f"work {receipt.work_id} rejected: {receipt.reason}",
                {"work_id": receipt.work_id, "reason": receipt.reason},
            )
        self.node.publish({"type": "work", "receipt": receipt.work_id})
        self._refresh_wanted.set()

    # -- work ----------------------------------------------------------------------------

    async def _work_loop(self) -> None:
        """Run tasks one at a time on the kernel thread, waiting while the guard pauses."""
        while True:
            task = await self._tasks.get()
            # Polled: the guard changes at most once per telemetry tick.
            while self.node.work_paused() and time.time() < task.deadline_ts:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
            if time.time() >= task.deadline_ts:
                await self.node.emit_log("warning", "work", f"task {task.task_id} expired")
                continue
            try:
                await self._run_task(task)
            except sqlite3.IntegrityError:
                pass  # a task re-delivered after it was done: its result is already queued
            except Exception as exc:
                # One failed task must not stop the node's work.
                log.exception("task %s failed", task.task_id)
                await self.node.emit_log("error", "work", f"task {task.task_id} failed: {exc}")

    async def _run_task(self, task: TaskGemm) -> None:
        from kernels.gemm import run_work_unit

        store, identity = self.node.store, self.node.identity
        assert store is not None and identity is not None and self._seqs is not None
        product = await self.node.run_in_kernel_thread(
            lambda backend: run_work_unit(backend, task.n, task.dtype, task.seed)
        )
        work_id = f"w-{task.task_id}"
        result = WorkResult(
            work_id=work_id,
            task_id=task.task_id,
            kind="gemm",
            seed=task.seed,
            n=task.n,
            dtype=task.dtype,
            commitment=product.commitment,
            result_b64=base64.b64encode(product.result).decode(),
            elapsed_s=product.elapsed_s,
            tflops=product.tflops,
        )
        topic = DEFAULT_TOPICS.node_work(identity.node_id)
        payload = encode(identity, self._seqs.next(), WorkResult.TYPE, result)
        await store.add_work(
            {
                "work_id": work_id,
                "task_id": task.task_id,
                "ts": time.time(),
                "n": task.n,
                "dtype": task.dtype,
                "tflops": product.tflops,
                "elapsed_s": product.elapsed_s,
                "commitment": product.commitment,
            },
            topic,
            payload,
        )
        self.node.publish({"type": "work", "submitted": work_id})
        self._flush_wanted.set()

    # -- requests ------------------------------------------------------------------------

    async def request(
        self, method: str, params: dict[str, Any], wait_s: float = REQUEST_TIMEOUT_S
    ) -> Any:
        """Ask the coordinator; raises CommandError when offline, refused or timed out."""
        if self._client is None:
            since = time.strftime("%H:%M:%S", time.localtime(self.since_ts))
            raise CommandError(f"offline since {since}: cannot reach the network")
        request_id = secrets.token_hex(8)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            await self._publish(
                DEFAULT_TOPICS.node_request(self.node.node_id),
                Request.TYPE,
                Request(request_id=request_id, method=method, params=clean),
            )
            response = await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            raise CommandError(
                f"the coordinator did not answer {method} within {wait_s:g}s"
            ) from None
        finally:
            self._requests.pop(request_id, None)
        if not response.ok:
            raise CommandError(response.error or f"{method} refused")
        return response.result_as(object)
