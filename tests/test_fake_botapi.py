"""The Bot API stand-in, driven through the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import html
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Bot, BotCommand, LinkPreviewOptions, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import Application, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from tests.fakes.botapi import DEFAULT_TOKEN, FakeBotApi, Pace
from tests.fakes.telegram_html import clean_text

# PTB 22 warns about RetryAfter.retry_after turning into a timedelta; not our concern here.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    """A hand-driven monotonic clock for pace windows."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def paced(clock: FakeClock):
    """A server whose pace windows follow ``clock``."""
    server = FakeBotApi(clock=clock)
    server.add_chat("@test_channel", "channel")
    server.add_chat("@other_channel", "channel")
    server.add_chat(5001, "private")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bot_for(server: FakeBotApi, **kwargs) -> Bot:
    return Bot(server.token, base_url=f"{server.url}/bot", **kwargs)


# ------------------------------------------------------------------ basics


async def test_get_me_and_send_message_round_trip(botapi: FakeBotApi) -> None:
    async with bot_for(botapi) as bot:
        assert bot.username == botapi.bot_username
        first = await bot.send_message(
            "@test_channel",
            "<b>Alert</b> AT&amp;T &lt;3 <a href='https://example.org/x'>read</a>",
            parse_mode="HTML",
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )
        second = await bot.send_message("@test_channel", "plain")
    assert (first.message_id, second.message_id) == (1, 2)
    assert first.text == "Alert AT&T <3 read"
    assert [(e.type, e.offset, e.length) for e in first.entities] == [
        ("bold", 0, 5),
        ("text_link", 14, 4),
    ]
    assert first.entities[1].url == "https://example.org/x"
    assert first.chat.username == "test_channel"
    sent = botapi.sent("@test_channel")
    assert [m.message_id for m in sent] == [1, 2]
    assert sent[0].parse_mode == "HTML"
    assert sent[0].link_preview_options == {"is_disabled": True}
    assert sent[0].plain_text == "Alert AT&T <3 read"
    assert sent[1].parse_mode is None
    assert sent[0].chat_id == botapi.chat("@test_channel").id


async def test_message_ids_increase_per_chat(botapi: FakeBotApi) -> None:
    other = botapi.add_chat("@second", "channel")
    async with bot_for(botapi) as bot:
        a1 = await bot.send_message("@test_channel", "a")
        b1 = await bot.send_message(other.id, "b")
        a2 = await bot.send_message("@test_channel", "a")
    assert (a1.message_id, b1.message_id, a2.message_id) == (1, 1, 2)


def test_json_form_and_query_parameters_are_all_accepted(botapi: FakeBotApi) -> None:
    url = f"{botapi.base_url}{botapi.token}/sendMessage"
    with httpx.Client(timeout=5) as client:
        by_json = client.post(url, json={"chat_id": "@test_channel", "text": "j"}).json()
        by_form = client.post(url, data={"chat_id": "@test_channel", "text": "f"}).json()
        by_query = client.get(url, params={"chat_id": "@test_channel", "text": "q"}).json()
        case = client.post(
            f"{botapi.base_url}{botapi.token}/SENDMESSAGE",
            json={"chat_id": "@test_channel", "text": "c"},
        ).json()
    assert [r["ok"] for r in (by_json, by_form, by_query, case)] == [True] * 4
    assert [m.text for m in botapi.sent()] == ["j", "f", "q", "c"]


def test_error_envelope_and_status(botapi: FakeBotApi) -> None:
    with httpx.Client(timeout=5) as client:
        answer = client.post(
            f"{botapi.base_url}{botapi.token}/sendMessage",
            json={"chat_id": "@nowhere", "text": "x"},
        )
    assert answer.status_code == 400
    assert answer.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: chat not found",
    }


def test_tokens_paths_and_unknown_methods(botapi: FakeBotApi) -> None:
    with httpx.Client(timeout=5) as client:
        wrong = client.post(f"{botapi.base_url}999:wrong/getMe")
        malformed = client.post(f"{botapi.base_url}nonsense/getMe")
        unknown = client.post(f"{botapi.base_url}{botapi.token}/sendTelepathy")
        not_bot = client.get(f"{botapi.url}/index.html")
    assert (wrong.status_code, wrong.json()["description"]) == (401, "Unauthorized")
    assert (malformed.status_code, malformed.json()["description"]) == (404, "Not Found")
    assert (unknown.status_code, unknown.json()["description"]) == (404, "Not Found")
    assert not_bot.status_code == 404


async def test_ptb_maps_token_and_method_errors(botapi: FakeBotApi) -> None:
    with pytest.raises(InvalidToken):
        await Bot("999:wrong", base_url=botapi.base_url).get_me()
    async with bot_for(botapi) as bot:
        with pytest.raises(EndPointNotFound):
            await bot.do_api_request("sendTelepathy")


# ------------------------------------------------------- HTML and lengths

HTML_ERRORS = [
    ("Price < 5 dollars", 'Unsupported start tag "" at byte offset 6'),
    ("Breaking<br/>news", 'Unsupported start tag "br/" at byte offset 8'),
    ("Новости <p>", 'Unsupported start tag "p" at byte offset 15'),
    ("<b>Title", 'Can\'t find end tag corresponding to start tag "b"'),
    ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
    ("<a href=https://x.org>x</a>", "Unexpected end of name token at byte offset 8"),
    ("tail <", "Unclosed start tag at byte offset 5"),
]


@pytest.mark.parametrize(("text", "parser_message"), HTML_ERRORS)
async def test_malformed_html_is_refused_with_telegram_message(
    botapi: FakeBotApi, text: str, parser_message: str
) -> None:
    async with bot_for(botapi) as bot:
        with pytest.raises(BadRequest) as caught:
            await bot.send_message("@test_channel", text, parse_mode="HTML")
    assert "can't parse entities" in caught.value.message.lower()
    (rejected,) = botapi.rejected("sendMessage")
    assert rejected.status == 400
    assert rejected.description == f"Bad Request: can't parse entities: {parser_message}"
    assert botapi.sent() == []


@pytest.mark.parametrize(
    ("text", "accepted", "description"),
    [
        ("a" * 4096, True, None),
        ("a" * 4097, False, "Bad Request: message is too long"),
        ("😀" * 4096, True, None),  # 8192 UTF-16 units: the limit is code points
        ("😀" * 4097, False, "Bad Request: message is too long"),
        ("<b>" + "a" * 4096 + "</b>", True, None),  # markup does not count
        ("&amp;" * 4096, True, None),
        ("a" * 4096 + "   \n\n", True, None),  # trailing blanks are trimmed first
        ("a" * 32769, False, "Bad Request: text is too long"),  # bytes, before parsing
        ("", False, "Bad Request: message text is empty"),
        ("<b> </b>", False, "Bad Request: text must be non-empty"),
        ("  \n ", False, "Bad Request: text must be non-empty"),
    ],
)
async def test_length_and_emptiness_rules(
    botapi: FakeBotApi, text: str, accepted: bool, description: str | None
) -> None:
    async with bot_for(botapi) as bot:
        if accepted:
            message = await bot.send_message("@test_channel", text, parse_mode="HTML")
            assert message.message_id == 1
        else:
            with pytest.raises(BadRequest):
                await bot.send_message("@test_channel", text, parse_mode="HTML")
            assert [r.description for r in botapi.rejected()] == [description]


async def test_utf16_length_mode_is_stricter(clock: FakeClock) -> None:
    with FakeBotApi(length_unit="utf16") as server:
        server.add_chat("@c")
        async with bot_for(server) as bot:
            with pytest.raises(BadRequest, match="Message is too long"):
                await bot.send_message("@c", "😀" * 2049)
            await bot.send_message("@c", "😀" * 2048)


@pytest.mark.parametrize(
    ("chat", "text", "description"),
    [
        # parse errors come before chat resolution
        (
            "@kicked",
            "<b>x",
            "Bad Request: can't parse entities: "
            'Can\'t find end tag corresponding to start tag "b"',
        ),
        ("@nowhere", "", "Bad Request: message text is empty"),
        # chat resolution comes before the emptiness and length checks
        ("@nowhere", "<b> </b>", "Bad Request: chat not found"),
        ("@kicked", "a" * 5000, "Forbidden: bot was kicked from the channel chat"),
    ],
)
async def test_check_order(botapi: FakeBotApi, chat: str, text: str, description: str) -> None:
    botapi.add_chat("@kicked", "channel", "kicked")
    async with bot_for(botapi) as bot:
        with pytest.raises((BadRequest, Forbidden)):
            await bot.send_message(chat, text, parse_mode="HTML")
    assert [r.description for r in botapi.rejected()] == [description]


async def test_markdown_is_accepted_and_unknown_parse_mode_refused(botapi: FakeBotApi) -> None:
    async with bot_for(botapi) as bot:
        message = await bot.send_message("@test_channel", "*bold* \\- x", parse_mode="MarkdownV2")
        assert message.message_id == 1
        with pytest.raises(BadRequest, match="Unsupported parse_mode"):
            await bot.send_message("@test_channel", "x", parse_mode="BBCode")


@pytest.fixture(scope="module")
def shared_server():
    """One server for the property test below (hypothesis reruns the body many times)."""
    with FakeBotApi(pace=Pace.off()) as server:
        server.add_chat("@prop")
        yield server


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=400), st.text(max_size=400))
def test_escaped_feed_text_is_always_accepted(shared_server: FakeBotApi, title: str, body: str):
    text = f"<b>{html.escape(title, quote=False)}</b>\n{html.escape(body, quote=False)}"
    expected, _ = clean_text(f"{title}\n{body}", [])
    with httpx.Client(timeout=5) as client:
        answer = client.post(
            f"{shared_server.base_url}{shared_server.token}/sendMessage",
            json={"chat_id": "@prop", "text": text, "parse_mode": "HTML"},
        ).json()
    if not expected:
        assert answer["description"] == "Bad Request: text must be non-empty"
    else:
        assert answer["ok"] is True, answer
        assert answer["result"]["text"].lstrip(" \n") == expected


# ------------------------------------------------------ chats and access


@pytest.mark.parametrize(
    ("chat_type", "state", "description"),
    [
        ("channel", "kicked", "Forbidden: bot was kicked from the channel chat"),
        ("supergroup", "kicked", "Forbidden: bot was kicked from the supergroup chat"),
        ("group", "kicked", "Forbidden: bot was kicked from the group chat"),
        ("channel", "not_member", "Forbidden: bot is not a member of the channel chat"),
        ("supergroup", "not_member", "Forbidden: bot is not a member of the supergroup chat"),
        ("private", "blocked", "Forbidden: bot was blocked by the user"),
    ],
)
async def test_forbidden_chats(
    botapi: FakeBotApi, chat_type: str, state: str, description: str
) -> None:
    chat = botapi.add_chat("@target", chat_type, state)
    async with bot_for(botapi) as bot:
        with pytest.raises(Forbidden) as caught:
            await bot.send_message(chat.id, "hello")
    assert caught.value.message == description
    assert [(r.status, r.description) for r in botapi.rejected()] == [(403, description)]


async def test_channel_where_the_bot_is_not_admin(botapi: FakeBotApi) -> None:
    botapi.add_chat("@readonly", "channel", "not_admin")
    async with bot_for(botapi) as bot:
        with pytest.raises(BadRequest, match="Need administrator rights in the channel chat"):
            await bot.send_message("@readonly", "x")
        member = await bot.get_chat_member("@readonly", bot.id)
        admin = await bot.get_chat_member("@test_channel", bot.id)
        other = await bot.get_chat_member("@test_channel", 42)
    assert (member.status, admin.status, other.status) == ("member", "administrator", "member")
    assert admin.can_post_messages is True


async def test_chat_not_found_and_missing_chat_id(botapi: FakeBotApi) -> None:
    async with bot_for(botapi) as bot:
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message("@no_such_channel", "x")
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(-100123, "x")
    with httpx.Client(timeout=5) as client:
        answer = client.post(f"{botapi.base_url}{botapi.token}/sendMessage", data={"text": "x"})
    assert (answer.status_code, answer.json()["description"]) == (
        400,
        "Bad Request: chat_id is empty",
    )


async def test_kicking_mid_run_is_seen_by_the_next_send(botapi: FakeBotApi) -> None:
    async with bot_for(botapi) as bot:
        await bot.send_message("@test_channel", "before")
        botapi.set_chat_state("@test_channel", "kicked")
        with pytest.raises(Forbidden):
            await bot.send_message("@test_channel", "after")
    assert [m.text for m in botapi.sent()] == ["before"]


async def test_get_chat(botapi: FakeBotApi) -> None:
    botapi.add_chat("@gone", "channel", "kicked")
    async with bot_for(botapi) as bot:
        info = await bot.get_chat("@test_channel")
        assert (info.type, info.username, info.id) == (
            "channel",
            "test_channel",
            botapi.chat("@test_channel").id,
        )
        with pytest.raises(Forbidden):
            await bot.get_chat("@gone")


async def test_forum_topics(botapi: FakeBotApi) -> None:
    forum = botapi.add_chat("@forum", "supergroup", is_forum=True, topics=[7])
    async with bot_for(botapi) as bot:
        message = await bot.send_message(forum.id, "in topic", message_thread_id=7)
        assert message.message_thread_id == 7
        with pytest.raises(BadRequest, match="Message thread not found"):
            await bot.send_message(forum.id, "lost", message_thread_id=99)
    assert [m.message_thread_id for m in botapi.sent()] == [7]


# ------------------------------------------------------------------ pace


async def test_channel_pace_answers_retry_after(paced: FakeBotApi, clock: FakeClock) -> None:
    async with bot_for(paced) as bot:
        for i in range(20):
            clock.now += 0.1
            await bot.send_message("@test_channel", f"alert {i}")
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message("@test_channel", "one too many")
        # other chats keep flowing
        await bot.send_message("@other_channel", "elsewhere")
    assert "retry in 59 seconds" in caught.value.message.lower()
    assert paced.count_429 == 1
    (rejected,) = paced.rejected()
    assert (rejected.status, rejected.retry_after) == (429, 59)
    assert rejected.description == "Too Many Requests: retry after 59"
    assert len(paced.sent("@test_channel")) == 20


async def test_pace_window_slides_and_rejections_do_not_count(
    paced: FakeBotApi, clock: FakeClock
) -> None:
    async with bot_for(paced) as bot:
        for _ in range(20):
            await bot.send_message("@test_channel", "x")
        for _ in range(3):
            with pytest.raises(RetryAfter):
                await bot.send_message("@test_channel", "refused")
        clock.now += 60.0
        for _ in range(20):
            await bot.send_message("@test_channel", "x")
    assert paced.count_429 == 3
    assert len(paced.sent()) == 40


def test_retry_after_header_and_parameters(paced: FakeBotApi) -> None:
    url = f"{paced.base_url}{paced.token}/sendMessage"
    with httpx.Client(timeout=5) as client:
        for _ in range(20):
            assert client.post(url, json={"chat_id": "@test_channel", "text": "x"}).is_success
        answer = client.post(url, json={"chat_id": "@test_channel", "text": "x"})
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "60"
    assert answer.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 60",
        "parameters": {"retry_after": 60},
    }


async def test_private_chat_burst_then_one_per_second(paced: FakeBotApi, clock: FakeClock) -> None:
    async with bot_for(paced) as bot:
        for _ in range(3):
            await bot.send_message(5001, "x")
        with pytest.raises(RetryAfter):
            await bot.send_message(5001, "x")
        clock.now += 1.0
        await bot.send_message(5001, "x")
    assert [r.retry_after for r in paced.rejected()] == [1]


async def test_strict_pace_private_one_per_second(clock: FakeClock) -> None:
    with FakeBotApi(pace=Pace.strict(), clock=clock) as server:
        server.add_chat(77, "private")
        async with bot_for(server) as bot:
            await bot.send_message(77, "x")
            with pytest.raises(RetryAfter):
                await bot.send_message(77, "y")
            clock.now += 1.0
            await bot.send_message(77, "z")
    assert [m.text for m in server.sent()] == ["x", "z"]


async def test_global_pace_thirty_per_second(clock: FakeClock) -> None:
    with FakeBotApi(clock=clock) as server:
        chats = [server.add_chat(f"@ch{i}", "channel") for i in range(31)]
        async with bot_for(server) as bot:
            for chat in chats[:30]:
                await bot.send_message(chat.id, "x")
            with pytest.raises(RetryAfter):
                await bot.send_message(chats[30].id, "x")
            clock.now += 1.0
            await bot.send_message(chats[30].id, "x")
    assert server.count_429 == 1


async def test_pace_off_never_429s(clock: FakeClock) -> None:
    with FakeBotApi(pace=Pace.off(), clock=clock) as server:
        server.add_chat("@c")
        async with bot_for(server) as bot:
            for _ in range(40):
                await bot.send_message("@c", "x")
    assert (server.count_429, len(server.sent())) == (0, 40)


async def test_concurrent_sends_get_unique_ids(clock: FakeClock) -> None:
    with FakeBotApi(pace=Pace.off(), clock=clock) as server:
        chats = [server.add_chat(f"@c{i}") for i in range(4)]
        request = HTTPXRequest(connection_pool_size=16)
        async with Bot(server.token, base_url=server.base_url, request=request) as bot:
            results = await asyncio.gather(
                *(bot.send_message(chats[i % 4].id, f"m{i}") for i in range(40))
            )
    for chat in chats:
        ids = sorted(m.message_id for m in results if m.chat.id == chat.id)
        assert ids == list(range(1, 11))


# ------------------------------------------------------------ faults


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_injected_server_errors_raise_network_error(botapi: FakeBotApi, status) -> None:
    botapi.fail_next("sendMessage", status)
    async with bot_for(botapi) as bot:
        with pytest.raises(NetworkError) as caught:
            await bot.send_message("@test_channel", "x")
        assert not isinstance(caught.value, BadRequest)
        message = await bot.send_message("@test_channel", "retried")
    assert message.message_id == 1
    assert [m.text for m in botapi.sent()] == ["retried"]
    assert [r.status for r in botapi.rejected()] == [status]


async def test_dropped_connection_raises_network_error(botapi: FakeBotApi) -> None:
    botapi.fail_next("sendMessage", "drop", times=2)
    async with bot_for(botapi) as bot:
        for _ in range(2):
            with pytest.raises(NetworkError) as caught:
                await bot.send_message("@test_channel", "x")
            assert "RemoteProtocolError" in caught.value.message
        await bot.send_message("@test_channel", "third time")
    assert [m.text for m in botapi.sent()] == ["third time"]


async def test_hung_request_times_out(botapi: FakeBotApi) -> None:
    botapi.fail_next("sendMessage", "hang", delay=1.0)
    async with bot_for(botapi) as bot:
        with pytest.raises(TimedOut):
            await bot.send_message("@test_channel", "x", read_timeout=0.2)
    assert botapi.sent() == []


async def test_a_bug_in_the_fake_is_answered_as_500_and_recorded(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeBotApi(clock=clock) as server:
        monkeypatch.setattr(server, "_m_getme", lambda params: 1 / 0)
        with pytest.raises(NetworkError, match="fake Bot API bug"):
            await bot_for(server).get_me()
    assert server.bugs == ["getMe: ZeroDivisionError('division by zero')"]


def test_fail_next_rejects_unknown_modes(botapi: FakeBotApi) -> None:
    with pytest.raises(ValueError):
        botapi.fail_next("sendMessage", "explode")


# -------------------------------------------------------------- edits


async def test_edit_message_text(botapi: FakeBotApi) -> None:
    async with bot_for(botapi) as bot:
        sent = await bot.send_message("@test_channel", "<b>v1</b>", parse_mode="HTML")
        edited = await bot.edit_message_text(
            "<b>v2</b> also reported by X",
            chat_id="@test_channel",
            message_id=sent.message_id,
            parse_mode="HTML",
        )
        assert edited.text == "v2 also reported by X"
        assert edited.edit_date is not None
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.edit_message_text(
                "<b>v2</b> also reported by X",
                chat_id="@test_channel",
                message_id=sent.message_id,
                parse_mode="HTML",
            )
        with pytest.raises(BadRequest, match="Message to edit not found"):
            await bot.edit_message_text("x", chat_id="@test_channel", message_id=999)
    assert [m.method for m in botapi.messages()] == ["sendmessage", "editmessagetext"]


# ----------------------------------------------------------- commands


async def test_set_and_get_my_commands(botapi: FakeBotApi) -> None:
    async with bot_for(botapi) as bot:
        assert await bot.set_my_commands(
            [BotCommand("/status", "  Worker status "), BotCommand("help", "How to use")]
        )
        commands = await bot.get_my_commands()
    assert [(c.command, c.description) for c in commands] == [
        ("status", "Worker status"),
        ("help", "How to use"),
    ]


@pytest.mark.parametrize(
    ("command", "description", "answer"),
    [
        ("", "d", "Bad Request: command must be non-empty"),
        ("x" * 33, "d", "Bad Request: command length must not exceed 32"),
        ("ok", " ", "Bad Request: command description must be non-empty"),
        ("ok", "d" * 257, "Bad Request: command description length must not exceed 256"),
        ("Status", "d", "Bad Request: BOT_COMMAND_INVALID"),
        ("sta-tus", "d", "Bad Request: BOT_COMMAND_INVALID"),
    ],
)
async def test_set_my_commands_validation(
    botapi: FakeBotApi, command: str, description: str, answer: str
) -> None:
    async with bot_for(botapi) as bot:
        with pytest.raises(BadRequest):
            await bot.set_my_commands([BotCommand(command, description)])
    assert [r.description for r in botapi.rejected()] == [answer]


def test_set_my_commands_needs_a_json_array(botapi: FakeBotApi) -> None:
    url = f"{botapi.base_url}{botapi.token}/setMyCommands"
    with httpx.Client(timeout=5) as client:
        not_json = client.post(url, data={"commands": "{oops"}).json()
        not_array = client.post(url, data={"commands": json.dumps({"a": 1})}).json()
    assert not_json["description"] == "Bad Request: can't parse commands JSON object"
    assert not_array["description"] == "Bad Request: expected an Array of BotCommand"


# ------------------------------------------------------------ updates


async def test_get_updates_returns_injected_messages(botapi: FakeBotApi) -> None:
    first = botapi.push_message(42, 42, "/start")
    botapi.push_message(42, 42, "hello")
    async with bot_for(botapi) as bot:
        updates = await bot.get_updates(timeout=0)
        assert [u.update_id for u in updates] == [first, first + 1]
        start = updates[0].message
        assert (start.text, start.from_user.id, start.chat.type) == ("/start", 42, "private")
        assert [(e.type, e.offset, e.length) for e in start.entities] == [("bot_command", 0, 6)]
        confirmed = await bot.get_updates(offset=first + 1, timeout=0)
        assert [u.message.text for u in confirmed] == ["hello"]
        assert [u.update_id for u in await bot.get_updates(offset=first + 2, timeout=0)] == []
    assert botapi.pending_updates() == []


async def test_long_poll_wakes_up_on_new_update(botapi: FakeBotApi) -> None:
    pusher = threading.Timer(0.3, botapi.push_message, args=(42, 42, "late"))
    pusher.start()
    try:
        async with bot_for(botapi) as bot:
            updates = await bot.get_updates(timeout=10, read_timeout=15)
    finally:
        pusher.cancel()
    assert [u.message.text for u in updates] == ["late"]


async def test_long_poll_timeout_is_capped(clock: FakeClock) -> None:
    with FakeBotApi(max_poll_timeout=0.2) as server:
        async with bot_for(server) as bot:
            assert await bot.get_updates(timeout=30, read_timeout=10) == ()


async def test_webhook_conflict_and_delete_webhook(botapi: FakeBotApi) -> None:
    async with bot_for(botapi) as bot:
        assert await bot.set_webhook("https://example.org/hook")
        with pytest.raises(Conflict, match="while webhook is active"):
            await bot.get_updates(timeout=0)
        assert await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == ()
    with httpx.Client(timeout=5) as client:
        answer = client.post(f"{botapi.base_url}{botapi.token}/deleteWebhook").json()
    assert answer == {"ok": True, "result": True, "description": "Webhook is already deleted"}


async def test_second_poll_terminates_the_first(botapi: FakeBotApi) -> None:
    async with bot_for(botapi) as first_bot, bot_for(botapi) as second_bot:
        older = asyncio.create_task(first_bot.get_updates(timeout=10, read_timeout=15))
        for _ in range(100):  # bounded: wait until the first poll reached the server
            if any(name == "getupdates" for name, _ in botapi.requests()):
                break
            await asyncio.sleep(0.02)
        newer = asyncio.create_task(second_bot.get_updates(timeout=1, read_timeout=10))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await older
        assert await newer == ()


async def test_ptb_application_answers_a_command(botapi: FakeBotApi) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text(
            f"Your chat id is {update.effective_chat.id}", do_quote=True
        )

    app = Application.builder().token(botapi.token).base_url(botapi.base_url).build()
    app.add_handler(CommandHandler("start", start))
    botapi.push_message(4242, 4242, "/start")
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        try:
            for _ in range(200):  # bounded wait for the reply
                if botapi.sent(4242):
                    break
                await asyncio.sleep(0.025)
        finally:
            await app.updater.stop()
            await app.stop()
    (reply,) = botapi.sent(4242)
    assert reply.text == "Your chat id is 4242"
    assert json.loads(reply.params["reply_parameters"])["message_id"] == 1
    assert any(name == "deletewebhook" for name, _ in botapi.requests())


# ---------------------------------------------------------- by hand


def test_runnable_from_the_command_line() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.botapi",
            "--port",
            "0",
            "--token",
            DEFAULT_TOKEN,
            "--chat",
            "@c",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = ""
        deadline = time.monotonic() + 20
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("fake Bot API at "):
                url = line.split()[4]
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(timeout=5) as client:
            sent = client.post(
                f"{url}/bot{DEFAULT_TOKEN}/sendMessage", json={"chat_id": "@c", "text": "hi"}
            ).json()
            recorded = client.get(f"{url}/_fake/messages").json()
        assert sent["ok"] is True
        assert [m["text"] for m in recorded["result"]] == ["hi"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
