"""Field types of the wire payloads: constrained strings and numbers msgspec checks on decode.

Ids chosen by peers end up in logs, file names and SQL, so they keep to a safe alphabet;
money is integer base units; fractions travel as ``"n/d"`` text, never floats.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

NodeId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
# Ids chosen by peers end up in logs, file names and SQL: keep them to a safe alphabet.
Ident = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
Name = Annotated[str, msgspec.Meta(max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=512)]
Category = Annotated[str, msgspec.Meta(pattern="^[a-z0-9][a-z0-9_-]{0,63}$")]
Method = Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9_.]{0,63}$")]
# 32 bytes as 64 lowercase hex digits: work seeds and Merkle roots.
Digest = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
# Work unit geometry (kernels/work_spec.py checks the finer rules: multiples, block sizes).
MatrixSide = Annotated[int, msgspec.Meta(ge=1, le=1 << 18)]
ReductionDepth = Annotated[int, msgspec.Meta(ge=1, le=1 << 20)]
BlockSide = Annotated[int, msgspec.Meta(ge=1, le=64)]
LeafIndex = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
# A node works on up to 16 devices at once (a mining rig's GPUs), each with its own units.
MAX_WORKERS = 16
WorkerIndex = Annotated[int, msgspec.Meta(ge=0, le=MAX_WORKERS - 1)]
# 0: a node that cannot compute (no usable backend) says so and gets no units.
WorkerCount = Annotated[int, msgspec.Meta(ge=0, le=MAX_WORKERS)]
Flops = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
BaseUnits = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0.0)]
Rank = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
EntryId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
# A list of strings carries a job's sentences (job.submit); its Struct bounds them.
ParamValue = str | int | bool | None | list[str]

FractionText = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9]{1,24}(/[1-9][0-9]{0,23})?$", max_length=49)
]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
