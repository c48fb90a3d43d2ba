"""Pacing and retry decisions, with time as an argument."""

from __future__ import annotations

import random

import pytest

from monitor.deliver.sender import GROUP_LIMIT, Pacer, is_group_chat, retry_delay


@pytest.mark.parametrize(
    ("chat", "group"),
    [("@syria_watch", True), ("-1001234567890", True), ("-42", True), ("12345", False)],
)
def test_group_chats(chat, group):
    assert is_group_chat(chat) is group


def test_one_message_a_second_per_chat():
    pacer = Pacer()
    assert pacer.delay("@c", 100.0) == 0
    pacer.record("@c", 100.0)
    assert pacer.delay("@c", 100.25) == pytest.approx(0.75)
    assert pacer.delay("@other", 100.25) == 0  # other chats are not held up
    assert pacer.delay("@c", 101.0) == 0


def test_channels_get_twenty_a_minute():
    pacer = Pacer()
    for n in range(GROUP_LIMIT):
        assert pacer.delay("@c", float(n)) == 0
        pacer.record("@c", float(n))
    # the 21st must wait until the first of the window is 60 s old
    assert pacer.delay("@c", 20.0) == pytest.approx(40.0)
    assert pacer.delay("@c", 60.0) == 0
    # a private chat only has the one-a-second pace
    for n in range(GROUP_LIMIT):
        pacer.record("777", 100.0 + n)
    assert pacer.delay("777", 120.0) == 0


def test_thirty_a_second_overall():
    pacer = Pacer()
    for n in range(30):
        pacer.record(f"@c{n}", 10.0 + n / 100)
    assert pacer.delay("@fresh", 10.5) == pytest.approx(0.5)
    assert pacer.delay("@fresh", 11.0) == 0


def test_messages_in_flight_hold_their_slot_until_answered():
    pacer = Pacer()
    pacer.start("@c")
    assert pacer.delay("@c", 100.0) == pytest.approx(1.0)  # counted as sent "now"
    pacer.answered("@c", 100.4, accepted=True)  # counted when Telegram accepted it
    assert pacer.delay("@c", 100.5) == pytest.approx(0.9)
    for n in range(29):
        pacer.start(f"@x{n}")
    assert pacer.delay("@fresh", 100.5) > 0  # 30 counted in the last second, 29 still flying
    for n in range(29):
        pacer.answered(f"@x{n}", 100.6, accepted=False)  # refused: they do not count
    assert pacer.delay("@fresh", 100.6) == 0


def test_retry_after_blocks_only_that_chat():
    pacer = Pacer()
    pacer.block("@c", 130.0)
    assert pacer.delay("@c", 100.0) == pytest.approx(30.0)
    assert pacer.delay("@d", 100.0) == 0
    pacer.block("@c", 110.0)  # a shorter wait never shortens the block
    assert pacer.delay("@c", 100.0) == pytest.approx(30.0)


@pytest.mark.parametrize("attempts", [1, 2, 5, 12, 40])
def test_retry_delay_grows_with_jitter_and_a_cap(attempts):
    rng = random.Random(attempts)
    delays = [retry_delay(attempts, rng) for _ in range(50)]
    nominal = min(3600.0, 2.0 * 2 ** (attempts - 1))
    assert all(nominal / 2 <= d <= nominal for d in delays)
    assert len(set(delays)) > 1  # jittered
