"""Pytest fixtures for the Bot API stand-in (loaded via ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.botapi import DEFAULT_TOKEN, FakeBotApi

DEFAULT_CHANNEL = "@test_channel"


@pytest.fixture
def botapi() -> Iterator[FakeBotApi]:
    """A started fake Bot API with token ``DEFAULT_TOKEN`` and channel ``@test_channel``.

    Per test: each test gets fresh chats, records and pace windows.
    """
    server = FakeBotApi(DEFAULT_TOKEN)
    server.add_chat(DEFAULT_CHANNEL, "channel", title="Test channel")
    server.start()
    try:
        yield server
    finally:
        server.stop()
    if server.bugs:
        pytest.fail(f"the fake Bot API itself failed: {server.bugs}")


@pytest.fixture
def botapi_token(botapi: FakeBotApi) -> str:
    """The token the ``botapi`` server accepts."""
    return botapi.token
