"""Work units' messages from the coordinator, on the node: a challenge goes to the device its
unit ran on; a receipt settles the unit in the store (once), tells its worker to forget it
and is written to the node's log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from core.api.events import WorkEvent
from core.money import format_omnit
from core.node.context import NodeContext
from core.node.worker import Worker
from core.protocol import Challenge, Receipt

log = logging.getLogger("omnitensor.link")


async def route_challenge(
    node: NodeContext, workers: Sequence[Worker], challenge: Challenge
) -> None:
    """A challenge goes to the worker (device) its unit was computed on."""
    store = node.store
    assert store is not None
    unit = await store.unit(challenge.task_id)
    if unit is None or unit.worker >= len(workers):
        log.warning("challenge for an unknown unit %s ignored", challenge.task_id)
        return
    await workers[unit.worker].challenges.put(challenge)


async def apply_work_receipt(
    node: NodeContext, workers: Sequence[Worker], receipt: Receipt
) -> bool:
    """Settle the receipt's unit; whether it settled now (the wallet changed)."""
    store = node.store
    assert store is not None
    settled = await store.apply_receipt(
        receipt.task_id,
        accepted=receipt.accepted,
        reason=receipt.reason,
        flops=receipt.flops,
        credited=receipt.credited_base_units,
        entry_id=receipt.entry_id,
    )
    for worker in workers:
        worker.forget(receipt.task_id)
    if not settled:
        return False
    if receipt.accepted:
        await node.emit_log(
            "info",
            "work",
            f"unit {receipt.task_id} verified ({receipt.flops / 1e12:.6g} TFLOP): credited "
            f"{format_omnit(receipt.credited_base_units, exact=True)} OMNIT",
            {"task_id": receipt.task_id, "credited": receipt.credited_base_units},
        )
    else:
        await node.emit_log(
            "warning",
            "work",
            f"unit {receipt.task_id} rejected: {receipt.reason}",
            {"task_id": receipt.task_id, "reason": receipt.reason},
        )
    node.publish(WorkEvent(receipt=receipt.task_id))
    return True
