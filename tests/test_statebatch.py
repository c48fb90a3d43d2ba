"""UnchangedWriter: many unchanged polls, few transactions, and each poll still hears
whether its own state was stored."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.exceptions import StorageUnavailable
from monitor.models import FeedSource
from monitor.statebatch import UnchangedWriter
from monitor.storage import Store, UnchangedPoll


@pytest.fixture
def store(database_url: str):
    store = Store(database_url)
    store.migrate()
    yield store
    store.close()


def polls(count: int, now: datetime) -> list[UnchangedPoll]:
    return [
        UnchangedPoll(f"feed-{n}", f"https://example.org/{n}.xml", now, 304, now + timedelta(n))
        for n in range(count)
    ]


@pytest.mark.parametrize(
    ("count", "size", "most_batches"), [(1, 500, 1), (60, 500, 1), (25, 10, 3)]
)
async def test_concurrent_polls_share_transactions(store, now, count, size, most_batches):
    store.sync_feeds([FeedSource(id=p.feed_id, url=p.url) for p in polls(count, now)], now)
    writer = UnchangedWriter(store, size=size, linger=0.2)
    batch = polls(count, now)

    async def one(poll: UnchangedPoll) -> datetime | None:
        await writer.record(poll)
        state = await asyncio.to_thread(store.feed_state, poll.feed_id)
        return state.next_poll if state else None  # stored before record() returned

    async with asyncio.timeout(30):
        stored = await asyncio.gather(*(one(p) for p in batch))
    assert stored == [p.next_poll for p in batch]
    assert 1 <= writer.batches <= most_batches
    await writer.aclose()  # nothing left: a no-op
    assert writer.batches <= most_batches


async def test_a_feed_without_a_row_gets_one(store, now):
    writer = UnchangedWriter(store, linger=0.0)
    (poll,) = polls(1, now)
    async with asyncio.timeout(30):
        await writer.record(poll)
    state = store.feed_state(poll.feed_id)
    assert state is not None and state.http_status == 304 and state.next_poll == poll.next_poll


async def test_a_failed_write_reaches_every_waiting_poll(tmp_path: Path, now):
    folder = tmp_path / "state"
    folder.mkdir()
    store = Store(f"sqlite:///{folder / 'monitor.db'}")
    store.migrate()
    store.close()
    shutil.rmtree(folder)  # the database is gone: the batch cannot be written
    writer = UnchangedWriter(store, linger=0.05)
    try:
        async with asyncio.timeout(30):
            results = await asyncio.gather(
                *(writer.record(p) for p in polls(5, now)), return_exceptions=True
            )
    finally:
        store.close()
    assert [type(r) for r in results] == [StorageUnavailable] * 5
    assert writer.batches == 0


async def test_a_cancelled_poll_does_not_stop_the_others(store, now):
    writer = UnchangedWriter(store, linger=0.2)
    first, second = polls(2, now)
    cancelled = asyncio.create_task(writer.record(first))
    kept = asyncio.create_task(writer.record(second))
    await asyncio.sleep(0)
    cancelled.cancel()
    async with asyncio.timeout(30):
        await kept
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert store.feed_state(second.feed_id) is not None
    assert store.feed_state(first.feed_id) is None  # its poll gave up before the write
