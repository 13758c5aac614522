"""Sending: strictly increasing message seqs per sender, never reused across restarts."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.errors import DataDirError

log = logging.getLogger("omnitensor.protocol")


class SequenceCounter:
    """Strictly increasing message seqs for one sender, never reused across restarts.

    The store holds a reservation: every seq handed out so far is below it. A new reservation
    (``block`` seqs ahead) is stored *before* the first seq of a block is used, so the store is
    written once per block, and after a crash the counter skips to the next block instead of
    reusing seqs. The start is also at least the wall clock in milliseconds, so a lost or
    restored-from-backup store still moves forward (as long as the sender averages fewer than
    1000 messages a second).

    Give either ``path`` (a small text file) or both ``load`` and ``store``; neither keeps the
    reservation in memory only (for throwaway identities).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        load: Callable[[], int | None] | None = None,
        store: Callable[[int], None] | None = None,
        block: int = 1000,
        clock_floor: bool = True,
    ) -> None:
        if block < 1:
            raise ValueError("block must be >= 1")
        if path is not None and (load is not None or store is not None):
            raise ValueError("give either path or load/store, not both")
        if (load is None) != (store is None):
            raise ValueError("load and store go together")
        if path is not None:
            self.path: Path | None = path
            self._load: Callable[[], int | None] = self._load_file
            self._store: Callable[[int], None] = self._store_file
        else:
            self.path = None
            self._load = load or (lambda: None)
            self._store = store or (lambda _value: None)
        self._block = block
        self._lock = threading.Lock()
        start = max(self._load() or 1, 1)
        if clock_floor:
            start = max(start, int(time.time() * 1000))
        self._next = start
        self._reserved = start  # nothing reserved yet: reserve on first use
        self._last = 0
        # Reservations are written ahead, off the caller's thread (the event loop): the
        # store fsyncs. Writes are serialised and only ever move the stored value up.
        self._store_lock = threading.Lock()
        self._stored = 0
        self._ahead_pending = False

    def next(self) -> int:
        """The next seq (strictly greater than any returned before, in any run)."""
        with self._lock:
            if self._next >= self._reserved:
                # The read-ahead has not landed (or this is the first use): store now.
                reserved = self._next + self._block
                self._store_at_least(reserved)
                self._reserved = reserved
            value = self._next
            self._next += 1
            self._last = value
            if not self._ahead_pending and self._reserved - self._next < self._block // 2:
                self._ahead_pending = True
                threading.Thread(
                    target=self._reserve_ahead,
                    args=(self._reserved + self._block,),
                    name="seq-reserve",
                    daemon=True,
                ).start()
            return value

    def _store_at_least(self, value: int) -> None:
        with self._store_lock:
            if value > self._stored:
                self._store(value)
                self._stored = value

    def _reserve_ahead(self, target: int) -> None:
        try:
            self._store_at_least(target)
        except Exception:
            log.exception("could not reserve sequence numbers ahead")
            with self._lock:
                self._ahead_pending = False
            return
        with self._lock:
            self._reserved = max(self._reserved, target)
            self._ahead_pending = False

    @property
    def last(self) -> int:
        """The last seq handed out (0 if none yet in this run)."""
        return self._last

    def _load_file(self) -> int | None:
        assert self.path is not None
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataDirError(f"cannot read sequence file {self.path}: {exc}") from None
        if not text.isdigit():
            raise DataDirError(
                f"sequence file {self.path} is corrupt; delete it to restart from the clock"
            )
        return int(text)

    def _store_file(self, value: int) -> None:
        assert self.path is not None
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, f"{value}\n".encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            # fsync the directory so the rename itself survives a power cut.
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise DataDirError(f"cannot write sequence file {self.path}: {exc.strerror}") from None
