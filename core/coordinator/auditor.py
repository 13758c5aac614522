"""The coordinator's own encoder, for audits of agreed inference tasks.

Redundancy cannot see two colluding nodes that agree on made-up vectors; the coordinator,
when the model is installed where it runs, encodes one secret random sentence of each
agreed task itself and compares (``InferenceDesk._audit``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
Encode = Callable[[list[str]], Vectors]


def local_auditor() -> Encode | None:
    """The coordinator's own encoder for audits, loaded on first use (None: no model here)."""
    from kernels.inference.model import model_status

    if not model_status()["installed"]:
        return None
    lock = threading.Lock()
    loaded: list[Any] = []

    def encode(texts: list[str]) -> Vectors:
        from threadpoolctl import ThreadpoolController

        from kernels.backend import numpy_backend
        from kernels.inference import SentenceEncoder, find_model_dir, load_model

        with lock:  # audits run in worker threads: load once
            if not loaded:
                model = load_model(find_model_dir(), numpy_backend())
                loaded.append(SentenceEncoder(model, workers=1))
                loaded.append(ThreadpoolController())  # finds the BLAS libraries once
        # One sentence is a few small GEMMs: one BLAS thread. More spin against the nodes'
        # threads on a shared machine (measured: 10x the CPU per audit).
        with loaded[1].limit(limits=1, user_api="blas"):
            vectors: Vectors = loaded[0].encode(texts)
        return vectors

    return encode
