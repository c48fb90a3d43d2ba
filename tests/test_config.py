"""Configuration: located errors, includes, durations, environment overrides."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import (
    CHANNEL,
    DEFAULT_DATABASE_URL,
    DEFAULTS,
    FEED,
    RULE,
    TELEGRAM,
    Section,
    TelegramSettings,
    config_path,
    database_url_from_env,
    load_settings,
    parse_duration,
)
from monitor.exceptions import ConfigError, ConfigErrors

from .conftest import REPO, clean_env, monitor_command, run_monitor

WriteConfig = Callable[..., Path]

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


def test_good_config_resolves_defaults_and_paths(write_config: WriteConfig) -> None:
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


def test_bundled_config_is_valid() -> None:
    settings = load_settings(REPO / "config" / "monitor.yaml", env={})
    assert {f.id for f in settings.feeds} == {
        "sample-ar",
        "sample-ru",
        "sample-en",
        "sample-channel",
    }
    assert all(Path(f.url).is_file() for f in settings.feeds)
    assert [r.name for r in settings.rules] == ["astana", "ceasefire", "lavrov"]


def test_typo_unknown_channel_and_bad_duration_are_all_reported_with_locations(
    write_config: WriteConfig,
) -> None:
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
def test_each_problem_is_located(write_config: WriteConfig, yaml_text: str, expected: str) -> None:
    path = write_config(yaml_text)
    problems = errors_of(path)
    assert any(p.startswith(str(path)) and expected in p for p in problems), problems


def test_errors_in_included_files_name_that_file(write_config: WriteConfig) -> None:
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
        "query, fuzzy, feeds, languages, fields, min_hits, priority, surge, notify",
    ]


def test_include_adds_rules_and_feeds_and_is_watched(write_config: WriteConfig) -> None:
    main = write_config("include: [more.yaml]\nchannels:\n  c: {chat: '-1001234'}\n")
    more = write_config(
        "feeds:\n  - {id: f, url: 'https://a/'}\nrules:\n  - {name: r, any: [x], notify: [c]}\n",
        "more.yaml",
    )
    settings = load_settings(main, env={})
    assert [f.id for f in settings.feeds] == ["f"]
    assert [r.name for r in settings.rules] == ["r"]
    assert settings.files == (main, more)


def test_missing_config_file_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert errors_of(path) == [f"{path}:1:1: configuration file not found: {path}"]


def test_version_changes_with_content(write_config: WriteConfig) -> None:
    path = write_config(GOOD)
    first = load_settings(path, env={}).version
    path.write_text(path.read_text() + "\n# edited\n")
    assert load_settings(path, env={}).version != first


def test_environment_overrides(write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
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
def test_database_url_forms(url: str, expected: str) -> None:
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
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "m5", "1.5h", "-5m", "5x", "5m3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


@given(st.lists(st.tuples(st.integers(1, 999), st.sampled_from("smhdw")), min_size=1, max_size=4))
def test_duration_sums_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    unit_seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    assert parse_duration(text).total_seconds() == sum(n * unit_seconds[u] for n, u in parts)


def test_back_test_configs_load_with_warnings(write_config: WriteConfig) -> None:
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


# --------------------------------------------------------------- one table of options


@pytest.mark.parametrize("section", [DEFAULTS, TELEGRAM, CHANNEL, FEED, RULE], ids=lambda s: s.name)
def test_every_option_fills_a_field_of_its_dataclass(section: Section) -> None:
    assert section.target is not None
    names = {f.name for f in dataclasses.fields(section.target)}
    assert set(section.keys) <= names
    assert len(set(section.keys)) == len(section.keys)
    for key in set(section.keys) - set(section.required) - {"name"}:
        section.default(key)  # every optional key has a default to fall back on


def test_unknown_key_hint_comes_from_the_table(write_config: WriteConfig) -> None:
    path = write_config("channels:\n  c: {chat: '@c', max_per_huor: 5}\n")
    (problem,) = errors_of(path)
    assert problem == (
        f"{path}:2:19: unknown key 'max_per_huor' (did you mean 'max_per_hour'?); allowed: "
        + ", ".join(CHANNEL.keys)
    )


def test_token_never_shows_in_a_repr(write_config: WriteConfig) -> None:
    settings = load_settings(write_config(GOOD), env={"TELEGRAM_BOT_TOKEN": "123:SECRETabc"})
    assert settings.telegram.token == "123:SECRETabc"
    assert "SECRET" not in repr(settings.telegram)
    assert "SECRET" not in repr(settings)
    assert "SECRET" not in repr(TelegramSettings(token="9:SECRETx"))


@pytest.mark.parametrize(("fuzzy", "warned"), [(0, True), (49, True), (50, False), (100, False)])
def test_fuzzy_accepts_0_to_100_and_warns_below_50(
    write_config: WriteConfig, fuzzy: int, warned: bool
) -> None:
    path = write_config(f"rules:\n  - {{name: r, any: [Astana], fuzzy: {fuzzy}}}\n")
    settings = load_settings(path, env={})
    assert settings.rules[0].fuzzy == fuzzy
    assert any("lets almost any word" in w for w in settings.warnings) is warned


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("fuzzy: 101", ":2:37: rule 'r': fuzzy must be a whole number from 0 to 100"),
        ("min_hits: 0", ":2:40: rule 'r': min_hits must be a whole number ≥ 1"),
        ("fields: [title, body]", ":2:46: rule 'r': unknown field 'body'"),
        ("priority: urgent", ":2:40: rule 'r': priority must be normal or high, not 'urgent'"),
    ],
)
def test_rule_values_are_checked_by_the_matcher_and_located(
    write_config: WriteConfig, rule: str, expected: str
) -> None:
    path = write_config(f"rules:\n  - {{name: r, any: [Astana], {rule}}}\n")
    problems = errors_of(path)
    assert len(problems) == 1 and f"{path}{expected}" in problems[0], problems


# ----------------------------------------------------- YAML 1.1 oddities, located

CHECK_CASES = [
    ("defaults:\n  interval: 0123\n", ":2:13: bad duration '0123'"),
    (
        "defaults:\n  max_bytes: 0123\n",
        ":2:14: expected a whole number, got '0123' (YAML 1.1 reads a leading 0 as octal",
    ),
    (
        "channels:\n  c: {chat: '@c', max_per_hour: 1:30}\n",
        ":2:33: expected a whole number, got '1:30' (YAML 1.1 reads digits with ':' as base 60",
    ),
    (
        "channels:\n  c: {chat: '@c', max_per_hour: 1e3}\n",
        ":2:33: expected a whole number, got '1e3' (write a whole number without a point",
    ),
    (
        "channels:\n  c: {chat: '@c', max_per_hour: 0x10}\n",
        ":2:33: expected a whole number, got '0x10'",
    ),
    (
        "feeds:\n  - {id: f, url: 'https://a/', language: no}\n",
        ":2:42: expected a language code, got 'no', which YAML reads as False; write it in quotes",
    ),
    (
        "rules:\n  - {name: r, any: [off]}\n",
        ":2:21: expected a term, got 'off', which YAML reads as False",
    ),
    (
        "rules:\n  - name: a\n    name: b\n    any: [x]\n",
        ":3:5: duplicate key 'name' (first at line 2)",
    ),
    ("feeds:\n\t- {id: f, url: x}\n", ":2:1: tab in indentation: YAML indents with spaces only"),
    ("", ":1:1: the configuration is empty"),
    ("# only a comment\n", ":1:1: the configuration is empty"),
    (
        "telegram:\n  feed_down_after: 99999999999999999999999999999999999\n",
        ":2:20: number too large",
    ),
    ("defaults:\n  interval: 99999999999999999999999w\n", ":2:13: "),
    ("rules: [\x00]\n", ":1:9: YAML error: control characters are not allowed"),
    ('feeds:\n  - {id: f, url: "a\\0b"}\n', ":2:18: unusable feed path"),
]


@pytest.mark.parametrize(("text", "expected"), CHECK_CASES)
def test_check_locates_each_yaml_oddity(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(text, encoding="utf-8")
    result = run_monitor("check", "--config", str(path))
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert f"{path}{expected}" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"rules:\n  - {name: caf\xe9, any: [x]}\n", ":2:15: not UTF-8 text: byte 21 (0xe9)"),
        (b"\xff\xfe", ":1:1: not UTF-8 text: byte 0 (0xff)"),
        ("rules:\n  - {name: ع, any: [x]}\n".encode() + b"\x80", ":3:1: not UTF-8 text: byte 32"),
    ],
)
def test_check_locates_bytes_that_are_not_utf8(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_bytes(data)
    result = run_monitor("check", "--config", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{path}{expected}" in result.stderr, result.stderr


def test_a_key_can_take_a_bare_boolean_as_its_word() -> None:
    """SPEC: `stories: off` unquoted means "off"; other text keys refuse YAML booleans."""
    import yaml

    from monitor.config import _Loader, _text

    root = yaml.compose("stories: off\n")
    assert isinstance(root, yaml.MappingNode)
    node = root.value[0][1]
    loader = _Loader(Path("x.yaml"), {})
    assert _text("edit, reply or off", bool_word=True)(loader, node) == "off"
    assert not loader.errors
    _text("a chat")(loader, node)
    assert "write it in quotes" in str(loader.errors[0])


VALID = """\
defaults:
  interval: 5m
  max_bytes: 2048
channels:
  desk: {chat: '@desk', max_per_hour: 5, quiet_hours: "23:00-07:00"}
feeds:
  - {id: wire, url: 'https://news.example/rss', tags: [agency], language: en}
rules:
  - name: astana
    any: [Astana, أستانا]
    fuzzy: 85
    notify: [desk]
  - {name: lavrov, query: 'Лавров AND NOT football', min_hits: 1, notify: desk}
"""

_MUTATIONS = st.sampled_from(
    [
        "0123",
        "1:30",
        "1e3",
        "no",
        "off",
        "~",
        "''",
        "[",
        "]",
        "{",
        "}",
        ":",
        "- ",
        "\t",
        "&a",
        "*a",
        "!!int",
        "!!python/object",
        "\x00",
        "\ud800",
        "\x85",
        "\u2028",
        "#",
        "'",
        '"',
        "?",
        "|",
        ">",
        "%YAML 1.1",
        "---",
        "...",
        "@",
        "`",
        ",",
        "\n",
        "  ",
        "99999999999999999999999",
        "-1",
        "0x1F",
        "0b1",
        ".inf",
        "2001-12-14",
        "=",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID)), st.integers(0, 4), _MUTATIONS | st.text(max_size=4)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_configs_only_ever_raise_config_errors(edits: list[tuple[int, int, str]]) -> None:
    text = VALID
    for at, cut, insert in edits:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + cut :]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "monitor.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            load_settings(path, env={})
        except ConfigError as exc:
            for error in getattr(exc, "errors", [exc]):
                assert error.path and error.line >= 1 and error.col >= 1, str(error)


# ------------------------------------------------ a running worker survives bad edits

RUNNING = (
    "channels:\n  desk: {{chat: '@desk'}}\nfeeds:\n  - {{id: wire, url: '{feed}'}}\nrules:\n{rules}"
)
ONE_RULE = "  - {name: astana, any: [Astana], notify: [desk]}\n"
TWO_RULES = ONE_RULE + "  - {name: aid, any: [convoy], notify: [desk]}\n"


def replace(path: Path, data: bytes) -> None:
    """Swap the file's content at once, so the worker never reads a half-written file."""
    part = path.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, path)


def test_running_worker_keeps_its_config_through_broken_edits(tmp_path: Path) -> None:
    feed = str(tmp_path / "none.xml")
    config = tmp_path / "monitor.yaml"
    config.write_text(RUNNING.format(feed=feed, rules=ONE_RULE), encoding="utf-8")
    log = tmp_path / "worker.log"
    broken: list[tuple[bytes, str]] = [
        (
            RUNNING.format(feed=feed, rules=ONE_RULE)
            .replace("{chat", "{max_per_hour: 0123, chat")
            .encode(),
            f"{config}:2:24: expected a whole number, got '0123'",
        ),
        (
            RUNNING.format(feed=feed, rules=ONE_RULE)
            .replace("{chat", "{max_per_hour: 1:30, chat")
            .encode(),
            f"{config}:2:24: expected a whole number, got '1:30'",
        ),
        (b"rules:\n  - {name: caf\xe9, any: [x]}\n", f"{config}:2:15: not UTF-8 text"),
        (b"", f"{config}:1:1: the configuration is empty"),
    ]
    with log.open("w") as err:
        worker = subprocess.Popen(
            monitor_command("run", "--config", str(config)),
            cwd=REPO,
            env=clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'monitor.db'}"),
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
    try:

        def wait_for(text: str, timeout: float = 20.0) -> None:
            deadline = time.monotonic() + timeout
            while text not in log.read_text(errors="replace"):
                assert worker.poll() is None, f"the worker exited:\n{log.read_text()}"
                if time.monotonic() > deadline:
                    pytest.fail(f"timed out waiting for {text!r}:\n{log.read_text()}")
                time.sleep(0.1)

        wait_for("worker ")  # started
        for data, message in broken:
            replace(config, data)
            wait_for(message)
            assert worker.poll() is None
        replace(config, RUNNING.format(feed=feed, rules=TWO_RULES).encode())
        wait_for("configuration reloaded")
        wait_for("2 rules")
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=15)
    output = log.read_text()
    assert worker.returncode == 0, output
    assert "Traceback" not in output
    for _, message in broken:
        assert output.count(message) == 1, output
    assert output.count("configuration reload failed") == len(broken)


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            'feeds:\n  - {id: f, url: "https://a/", user_agent: "bot\\r\\nX-Evil: 1"}\n',
            ":2:44: a User-Agent may not hold line breaks or control characters",
        ),
        (
            "feeds:\n  - id: f\n    url: https://a/\n    headers: {'Bad Name': x}\n",
            ":4:15: header name 'Bad Name' may hold only letters",
        ),
        (
            "feeds:\n  - id: f\n    url: https://a/\n    headers: {Accept: a, accept: b}\n",
            ":4:26: duplicate header 'accept'",
        ),
    ],
)
def test_request_headers_are_checked(
    write_config: WriteConfig, yaml_text: str, expected: str
) -> None:
    path = write_config(yaml_text)
    problems = errors_of(path)
    assert any(p.startswith(f"{path}{expected}") for p in problems), problems


def test_a_model_for_a_backend_without_models_is_a_located_warning(write_config) -> None:
    path = write_config(
        "translate:\n  backend: deepl\n  model: gpt-x\n  api_key_env: DEEPL_KEY\n"
        "channels:\n  desk: {chat: '@desk', translate_to: en}\n"
        "feeds:\n  - {id: f, url: 'https://example.org/feed'}\n"
        "rules:\n  - {name: r, any: [Astana], notify: [desk]}\n"
    )
    settings = load_settings(path)
    assert settings.translate is not None and settings.translate.model == "gpt-x"
    [warning] = [w for w in settings.warnings if "model" in w]
    expected = ":3:10: warning: translate: backend deepl has no models; 'model' is unused"
    assert warning.endswith(expected)
