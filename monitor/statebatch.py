"""Unchanged polls written together: one transaction per batch, not one per feed.

Most polls find their feed unchanged (a 304, or the same body hash), and such a
poll has only one thing to store: its feed's state row (errors cleared, next
poll, lease released). ``UnchangedWriter.record`` queues that row and waits;
the writer gathers what arrives within ``linger`` seconds (or ``size`` rows)
and stores it with one ``executemany`` (``Store.record_unchanged``), like a
database's group commit. Each waiting poll gets the outcome of its own batch,
the ``StorageError`` included, so a poll still returns only once its state is
stored. A batch lost to a crash costs no more than the same polls written one
by one: those feeds keep their lease and old schedule and are polled again
when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib

from monitor.storage import Store, UnchangedPoll

BATCH_SIZE = 500  # rows per transaction at most
LINGER = 0.05  # seconds the first row of a batch waits for company


class UnchangedWriter:
    """Batches ``UnchangedPoll`` rows into few transactions (one event loop)."""

    def __init__(self, store: Store, *, size: int = BATCH_SIZE, linger: float = LINGER) -> None:
        self.store = store
        self.size = size
        self.linger = linger
        self.batches = 0  # transactions written (for tests and benchmarks)
        self._pending: list[tuple[UnchangedPoll, asyncio.Future[None]]] = []
        self._full = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, poll: UnchangedPoll) -> None:
        """Store this poll's state with the next batch; return when it is stored."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((poll, done))
        if len(self._pending) >= self.size:
            self._full.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_while_pending())
        await done

    async def aclose(self) -> None:
        """Write whatever is still queued now (shutdown)."""
        self._full.set()
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        while self._pending:
            await self._write_one_batch()

    async def _flush_while_pending(self) -> None:
        while self._pending:
            if len(self._pending) < self.size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.linger)
            self._full.clear()
            await self._write_one_batch()

    async def _write_one_batch(self) -> None:
        batch, self._pending = self._pending[: self.size], self._pending[self.size :]
        live = [(poll, done) for poll, done in batch if not done.done()]  # skip cancelled polls
        if not live:
            return
        try:
            await asyncio.to_thread(self.store.record_unchanged, [poll for poll, _ in live])
        except Exception as exc:  # every waiting poll hears of it, as if it had written alone
            for _, done in live:
                if not done.done():
                    done.set_exception(exc)
            return
        self.batches += 1
        for _, done in live:
            if not done.done():
                done.set_result(None)
