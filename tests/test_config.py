"""Configuration: located errors, includes, durations, environment overrides."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import (
    DEFAULT_DATABASE_URL,
    config_path,
    database_url_from_env,
    load_settings,
    parse_duration,
)
from monitor.exceptions import ConfigErrors

from .conftest import REPO

#: A typo in a key, a bad duration and an unknown channel (also used by test_cli).
BROKEN = """
channels:
  syria:
    chat: "@syria_watch"
feeds:
  - id: sana
    url: https://sana.sy/feed/
    intervall: 5m
  - id: other
    url: https://example.org/rss
    interval: 5 minutes
rules:
  - name: astana
    any: [Astana]
    notify: [syira]
"""

GOOD = """
defaults:
  interval: 2m
  backfill: 6h
channels:
  syria:
    chat: "@syria_watch"
    language: ar
    timezone: Asia/Damascus
feeds:
  - id: sana
    url: https://sana.sy/feed/
    interval: 90s
    language: ar
    tags: [agency]
  - id: local
    url: feed.xml
    backfill: all
rules:
  - name: astana
    any: [Astana, أستانا]
    notify: [syria]
  - name: truce
    all: [truce]
    none: [football]
    feeds: [agency]
    notify: syria
"""


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_settings(path, env={})
    return [str(e) for e in info.value.errors]


def test_good_config_resolves_defaults_and_paths(write_config):
    path = write_config(GOOD)
    settings = load_settings(path, env={})
    sana, local = settings.feeds
    assert sana.interval == timedelta(seconds=90)
    assert sana.backfill == timedelta(hours=6)  # inherited
    assert sana.tags == ("agency",)
    assert local.backfill is None  # "all"
    assert local.interval == timedelta(minutes=2)
    assert local.url == str((path.parent / "feed.xml").resolve())
    assert settings.rules[1].notify == ("syria",)  # a single name is a list of one
    assert settings.channels["syria"].timezone == "Asia/Damascus"
    assert settings.summary().endswith(f"2 feeds, 2 rules, 1 channels (version {settings.version})")
    assert settings.files == (path,)


def test_bundled_config_is_valid():
    settings = load_settings(REPO / "config" / "monitor.yaml", env={})
    assert {f.id for f in settings.feeds} == {
        "sample-ar",
        "sample-ru",
        "sample-en",
        "sample-channel",
    }
    assert all(Path(f.url).is_file() for f in settings.feeds)
    assert [r.name for r in settings.rules] == ["astana", "ceasefire", "lavrov"]


def test_typo_unknown_channel_and_bad_duration_are_all_reported_with_locations(write_config):
    path = write_config(BROKEN)
    assert errors_of(path) == [
        f"{path}:7:5: unknown key 'intervall' (did you mean 'interval'?); allowed: id, url, "
        "interval, backfill, language, name, tags, user_agent, headers, kind, telegram, "
        "full_text, links",
        f"{path}:10:15: bad duration '5 minutes': write a number and a unit, e.g. 30s, 5m, 2h, 1d",
        f"{path}:14:14: rule 'astana' notifies unknown channel 'syira' (did you mean 'syria'?); "
        "channels: syria",
    ]


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "rules:\n  - name: a\n    any: [x]\n    notify: [c]\n  - name: a\n    any: [y]\n"
            "    notify: [c]\nchannels:\n  c: {chat: '@c'}\n",
            ":5:11: duplicate rule name 'a' (first defined at ",
        ),
        (
            "feeds:\n  - {id: f, url: 'https://a/'}\n  - {id: f, url: 'https://b/'}\n",
            ":3:10: duplicate feed id 'f'",
        ),
        ("include: [rules/*.yaml]\n", ":1:11: include 'rules/*.yaml' matches no file"),
        ("feeds:\n  - id: f\n    url: [a\n", ":4:1: YAML syntax error"),
        (
            "channels:\n  c:\n    chat: '@c'\n    link_preview: maybe\n",
            ":4:19: expected true or false",
        ),
        ("defaults:\n  interval: 0\n", ":2:13: duration must be longer than zero"),
        ("feeds: {id: f}\n", ":1:8: expected a list"),
        (
            "channels:\n  c: {chat: 'syria'}\n",
            ":2:13: chat 'syria' must be @username or a numeric id",
        ),
        (
            "channels:\n  c: {chat: '@c', timezone: Mars/Base}\n",
            ":2:29: unknown time zone 'Mars/Base'",
        ),
        ("rules:\n  - name: r\n    notify: []\n", ":2:11: rule 'r' needs any, all, none or query"),
        ("rules:\n  - any: [x]\n", ":2:5: a rule needs a 'name'"),
        ("feeds:\n  - id: f\n", ":2:5: a feed needs 'url'"),
        ("telegram:\n  admins: [me]\n", ":2:12: expected a whole number"),
    ],
)
def test_each_problem_is_located(write_config, yaml_text, expected):
    path = write_config(yaml_text)
    problems = errors_of(path)
    assert any(p.startswith(str(path)) and expected in p for p in problems), problems


def test_errors_in_included_files_name_that_file(write_config):
    main = write_config(
        """
        include: [rules/*.yaml]
        channels:
          c: {chat: "@c"}
        """
    )
    write_config("rules:\n  - name: ok\n    any: [x]\n    notify: [c]\n", "rules/a.yaml")
    bad = write_config("rules:\n  - name: bad\n    any: [y]\n    notfy: [c]\n", "rules/b.yaml")
    problems = errors_of(main)
    assert problems == [
        f"{bad}:4:5: unknown key 'notfy' (did you mean 'notify'?); allowed: name, any, all, none, "
        "query, fuzzy, feeds, languages, fields, min_hits, priority, notify",
    ]


def test_include_adds_rules_and_feeds_and_is_watched(write_config):
    main = write_config("include: [more.yaml]\nchannels:\n  c: {chat: '-1001234'}\n")
    more = write_config(
        "feeds:\n  - {id: f, url: 'https://a/'}\nrules:\n  - {name: r, any: [x], notify: [c]}\n",
        "more.yaml",
    )
    settings = load_settings(main, env={})
    assert [f.id for f in settings.feeds] == ["f"]
    assert [r.name for r in settings.rules] == ["r"]
    assert settings.files == (main, more)


def test_missing_config_file_is_a_located_error(tmp_path):
    path = tmp_path / "nope.yaml"
    assert errors_of(path) == [f"{path}:1:1: configuration file not found: {path}"]


def test_version_changes_with_content(write_config):
    path = write_config(GOOD)
    first = load_settings(path, env={}).version
    path.write_text(path.read_text() + "\n# edited\n")
    assert load_settings(path, env={}).version != first


def test_environment_overrides(write_config, monkeypatch):
    path = write_config(GOOD)
    env = {
        "TELEGRAM_BOT_TOKEN": "123:abc",
        "TELEGRAM_API_URL": "http://127.0.0.1:8081/",
        "DATABASE_URL": "postgres://u:p@db:5432/monitor",
    }
    settings = load_settings(path, env=env)
    assert settings.telegram.token == "123:abc"
    assert settings.telegram.api_url == "http://127.0.0.1:8081"
    with_bot = load_settings(path, env={"TELEGRAM_API_URL": "http://127.0.0.1:8081/bot/"})
    assert with_bot.telegram.api_url == "http://127.0.0.1:8081"
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/monitor"
    assert load_settings(path, env={}).database_url == DEFAULT_DATABASE_URL
    monkeypatch.setenv("MONITOR_CONFIG", str(path))
    assert config_path(None) == path
    assert config_path("x.yaml") == Path("x.yaml")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://h/db", "postgresql+psycopg://h/db"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("sqlite:////var/lib/m.db", "sqlite:////var/lib/m.db"),
    ],
)
def test_database_url_forms(url, expected):
    assert database_url_from_env({"DATABASE_URL": url}) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("0", 0),
        ("1w", 604800),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "m5", "1.5h", "-5m", "5x", "5m3"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


@given(st.lists(st.tuples(st.integers(1, 999), st.sampled_from("smhdw")), min_size=1, max_size=4))
def test_duration_sums_its_parts(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    unit_seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    assert parse_duration(text).total_seconds() == sum(n * unit_seconds[u] for n, u in parts)


def test_back_test_configs_load_with_warnings(write_config):
    """A rules-only file (for `monitor match`) needs no channels or feeds."""
    path = write_config(
        "rules:\n  - {name: a, any: [Astana], feeds: [sana-ar]}\n  - {name: b, none: [football]}\n"
    )
    settings = load_settings(path, env={})
    assert [r.name for r in settings.rules] == ["a", "b"]
    assert settings.warnings == (
        f"{path}:2:12: warning: rule 'a' notifies no channel: it shows in `monitor match` only",
        f"{path}:2:38: warning: rule 'a' names feed or tag 'sana-ar', which no feed has",
        f"{path}:3:12: warning: rule 'b' notifies no channel: it shows in `monitor match` only",
    )
