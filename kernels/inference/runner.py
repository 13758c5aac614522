"""Encode lists or streams of texts: sort by length, batch, spread batches over workers.

On NumPy the default is one worker thread per core with one BLAS thread each: NumPy's
elementwise passes are single-threaded but release the GIL, so two workers keep two cores
busy where one worker with two BLAS threads leaves one idle outside the GEMMs. BLAS threads
are limited with threadpoolctl only while an encode call runs. On CuPy one worker feeds the
device. Results always come back in input order.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.inference.cpu_fused import fused_loaded, fused_status, load_fused
from kernels.inference.encoder import Encoder
from kernels.inference.model import Model

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "FUSED_MIN_TOKENS",
    "MAX_BATCH_TOKENS",
    "STREAM_CHUNK",
    "SentenceEncoder",
    "default_workers",
    "plan_batches",
]

# Sentences per forward pass. Larger than sentence-transformers' 32: our GEMMs run on the
# real tokens only, and ~1,600 rows keep BLAS nearer its peak than ~400 (measured 12-16%
# faster per core at 128 than at 32 on 13-token sentences).
DEFAULT_BATCH_SIZE = 128
# Loading Numba and the fused kernels' cached machine code takes ~0.5 s, about what they save
# on ~10,000 tokens: an encoder runs the NumPy passes until it has seen this many tokens
# (`omnitensor infer "a sentence"` starts in half the time), or until someone else in the
# process has loaded them (long-lived owners such as the node load them up front).
FUSED_MIN_TOKENS = 8192
# Tokens per forward pass at most: bounds the (sentences, heads, length, length) scores.
MAX_BATCH_TOKENS = 4096
_MAX_WORKERS = 8
STREAM_CHUNK = 1024

Embeddings = npt.NDArray[np.float32]


@dataclass
class _Event:
    """What the stream's reader thread and encode driver tell the consuming thread."""

    kind: str  # "chunk", "done", "eof" or "error"
    chunk: list[str] = field(default_factory=list)
    ids: list[npt.NDArray[np.int64]] = field(default_factory=list)
    truncated: int = 0
    error: BaseException | None = None


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices sorted by length, cut into batches of at most ``batch_size`` sentences and
    ``MAX_BATCH_TOKENS`` tokens (so long inputs do not blow up the attention scratch)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending: the newest sentence is the longest, so this bounds padding too.
        if current and (
            len(current) == batch_size or (len(current) + 1) * lengths[i] > MAX_BATCH_TOKENS
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def default_workers(model: Model) -> int:
    """One worker per usable core on the CPU (at most 8); one on a GPU."""
    if model.backend.is_cupy:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, _MAX_WORKERS))


class SentenceEncoder:
    """A model with its worker pool; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        model: Model,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        workers: int | None = None,
        fused: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.workers = default_workers(model) if workers is None else max(1, workers)
        # Auto (None) on a CPU: the fused kernels wait for a call big enough to repay loading
        # them (see FUSED_MIN_TOKENS), unless this process has them already.
        cpu32 = not model.backend.is_cupy and model.dtype == "float32"
        self._fuse_later = fused is None and cpu32 and not fused_loaded()
        self._fuse_tried = fused is None and cpu32 and not self._fuse_later
        start_fused = False if self._fuse_later else fused
        self._encoders = [Encoder(model, fused=start_fused) for _ in range(self.workers)]
        self.kernels = ""
        self._name_kernels()
        self._pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix="encoder")
            if self.workers > 1
            else None
        )
        self.tokens_seen = 0
        self.truncated = 0

    def __enter__(self) -> SentenceEncoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    @property
    def dimension(self) -> int:
        """Length of one embedding."""
        return self.model.config.hidden_size

    def encode(self, texts: Sequence[str]) -> Embeddings:
        """Unit-length float32 embeddings, one row per text, in input order.

        Texts longer than the model's limit are truncated (counted in ``truncated``).
        """
        ids, truncated = self.model.tokenizer.encode_counting(texts)
        self.truncated += truncated
        return self.encode_ids(ids)

    def _name_kernels(self) -> None:
        # What runs the elementwise work: "numba 0.68.1", "cupy", "numpy passes" (not loaded
        # yet, or turned off by the caller) or "numpy passes (why the kernels cannot load)".
        fused = self._encoders[0].fused is not None
        cupy = self.model.backend.is_cupy
        tried = self._fuse_tried and not fused
        self.kernels = "cupy" if cupy else fused_status() if fused or tried else "numpy passes"

    def _fuse_if_worth_it(self, tokens: int) -> None:
        # Called before the workers start on a call: never a switch in the middle of one.
        if not self._fuse_later:
            return
        if self.tokens_seen + tokens < FUSED_MIN_TOKENS and not fused_loaded():
            return
        self._fuse_later = False
        self._fuse_tried = True
        kernels = load_fused()
        for encoder in self._encoders:
            encoder.fused = kernels
        self._name_kernels()

    def encode_ids(self, ids: Sequence[npt.NDArray[np.int64]]) -> Embeddings:
        """Embeddings of already tokenized texts, in input order."""
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        if not ids:
            return out
        lengths = [len(a) for a in ids]
        self._fuse_if_worth_it(sum(lengths))
        shares = self._shares(plan_batches(lengths, self.batch_size), lengths)

        def run(worker: int) -> None:
            encoder = self._encoders[worker]
            for batch in shares[worker]:
                vectors = encoder.embed([ids[i] for i in batch])
                out[batch] = self.model.backend.to_host(vectors)

        with self._blas_limit():
            if self._pool is None:
                run(0)
            else:
                for future in [self._pool.submit(run, w) for w in range(self.workers)]:
                    future.result()
        self.tokens_seen += sum(len(a) for a in ids)
        return out

    def _shares(self, batches: list[list[int]], lengths: list[int]) -> list[list[list[int]]]:
        # Largest batches first, each to the least loaded worker: similar token counts.
        shares: list[list[list[int]]] = [[] for _ in range(self.workers)]
        loads = [0] * self.workers
        weighed = [(sum(lengths[i] for i in batch), batch) for batch in batches]
        for tokens, batch in sorted(weighed, key=lambda item: item[0], reverse=True):
            worker = loads.index(min(loads))
            shares[worker].append(batch)
            loads[worker] += tokens
        return shares

    def encode_stream(
        self,
        texts: Iterable[str],
        *,
        chunk_size: int = STREAM_CHUNK,
        on_chunk: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[str, Embeddings]]:
        """Yield ``(text, embedding)`` in input order, ``chunk_size`` texts at a time.

        A pipeline: a reader thread reads and tokenizes chunk k+1 while the workers encode
        chunk k and the caller consumes chunk k-1, so reading, tokenizing and writing cost
        little wall time; each chunk is yielded as soon as it is encoded, even while the
        input is still open (a pipe). At most two chunks are read ahead, so memory does not
        grow with the input. An error raised by ``texts`` is re-raised here, in order.
        ``on_chunk`` gets the number of texts after each chunk (for progress).
        """
        events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        ahead = threading.Semaphore(2)
        stop = threading.Event()

        def read() -> None:
            iterator = iter(texts)
            try:
                while True:
                    ahead.acquire()
                    if stop.is_set():
                        return
                    chunk = list(itertools.islice(iterator, chunk_size))
                    if not chunk:
                        break
                    ids, truncated = self.model.tokenizer.encode_counting(chunk)
                    events.put(_Event("chunk", chunk, ids, truncated))
            except BaseException as exc:  # handed to the consumer, raised there
                events.put(_Event("error", error=exc))
                return
            events.put(_Event("eof"))

        driver = ThreadPoolExecutor(1, thread_name_prefix="encode-driver")
        # A daemon: a reader blocked on an open pipe must not keep the process alive.
        threading.Thread(target=read, name="encode-reader", daemon=True).start()
        inflight: collections.deque[tuple[list[str], Future[Embeddings]]] = collections.deque()
        eof = False
        try:
            while not eof or inflight:
                event = events.get()
                if event.kind == "error":
                    assert event.error is not None
                    raise event.error
                if event.kind == "eof":
                    eof = True
                elif event.kind == "chunk":
                    self.truncated += event.truncated
                    future = driver.submit(self.encode_ids, event.ids)
                    future.add_done_callback(lambda _f: events.put(_Event("done")))
                    inflight.append((event.chunk, future))
                while inflight and inflight[0][1].done():
                    chunk, done = inflight.popleft()
                    yield from zip(chunk, done.result(), strict=True)
                    ahead.release()
                    if on_chunk is not None:
                        on_chunk(len(chunk))
        finally:
            stop.set()
            ahead.release()
            driver.shutdown(wait=True, cancel_futures=True)

    def _blas_limit(self) -> contextlib.AbstractContextManager[Any]:
        if self.model.backend.is_cupy or self.workers == 1:
            return contextlib.nullcontext()
        from threadpoolctl import threadpool_limits

        limiter: contextlib.AbstractContextManager[Any] = threadpool_limits(
            limits=1, user_api="blas"
        )
        return limiter
