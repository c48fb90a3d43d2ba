"""The command line as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json

import pytest

from .conftest import run_monitor as monitor
from .test_config import BROKEN


def test_check_bundled_config():
    result = monitor("check")
    assert result.returncode == 0, result.stderr
    assert "config/monitor.yaml: OK — 4 feeds, 3 rules, 1 channels" in result.stdout


def test_check_reports_every_problem_and_exits_1(write_config):
    path = write_config(BROKEN)
    result = monitor("check", "--config", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        f"{path}:7:5",
        f"{path}:10:15",
        f"{path}:14:14",
    ]
    assert "Traceback" not in result.stderr


def test_monitor_config_env_is_used(write_config):
    path = write_config(BROKEN)
    assert monitor("check", env={"MONITOR_CONFIG": str(path)}).returncode == 1


def test_usage_error_exits_2():
    assert monitor("frobnicate").returncode == 2


def test_run_once_twice_on_the_bundled_config(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    first = monitor("run", "--once", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("[syria → @syria_watch]") >= 6
    assert "0 failing" in first.stderr
    second = monitor("run", "--once", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""
    assert "0 new entries" in second.stderr

    feeds = monitor("feeds", "--json", env=env)
    rows = json.loads(feeds.stdout)
    assert [r["id"] for r in rows] == ["sample-ar", "sample-ru", "sample-en", "sample-channel"]
    assert set(rows[0]) == {
        "id",
        "url",
        "last_poll",
        "http_status",
        "entries_seen",
        "errors",
        "last_error",
        "next_poll",
        "kind",
        "page_errors",
    }
    assert rows[3]["kind"] == "telegram" and rows[3]["page_errors"] == 0
    assert all(r["errors"] == 0 and r["entries_seen"] > 0 and r["last_poll"] for r in rows)
    table = monitor("feeds", env=env).stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "LAST_POLL", "HTTP_STATUS"] and len(table) == 5

    channels = json.loads(monitor("channels", "--json", env=env).stdout)
    assert channels[0]["name"] == "syria" and channels[0]["sent"] >= 6
    assert channels[0]["pending"] == 0 and channels[0]["failed"] == 0


def test_match_json_and_human():
    text = "وأكد لافروف أن اجتماع استانا المقبل سيبحث تثبيت وقف إطلاق النار."
    result = monitor("match", "--json", "--title", "Talks", stdin=text)
    assert result.returncode == 0, result.stderr
    matches = json.loads(result.stdout)["matches"]
    assert [m["rule"] for m in matches] == ["astana", "ceasefire", "lavrov"]  # config order
    for match in matches:
        for hit in match["hits"]:
            source = text if hit["field"] != "title" else "Talks"
            assert source[hit["start"] : hit["end"]] == hit["text"]
    human = monitor("match", "--title", "Talks", stdin=text)
    assert "✔ astana" in human.stdout and "«استانا»" in human.stdout
    assert monitor("match", stdin="nothing to see").stdout.strip() == "no rule matches"


def test_match_jsonl_keeps_input_order_and_reports_bad_lines(tmp_path):
    lines = [
        {"id": 1, "title": "Talks in Astana", "text": "A ceasefire was agreed."},
        {"id": "b", "title": "Weather", "text": "Sunny."},
        {"id": 3, "title": "", "text": "Переговоры в Астане", "language": "ru"},
    ]
    stdin = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\nnot json\n"
    result = monitor("match", "--jsonl", stdin=stdin)
    assert result.returncode == 1  # one bad line
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == [1, "b", 3, None]
    assert [m["rule"] for m in out[0]["matches"]] == ["astana", "ceasefire"]
    assert out[1]["matches"] == [] and [m["rule"] for m in out[2]["matches"]] == ["astana"]
    assert ":4:" in result.stderr
    file = tmp_path / "in.jsonl"
    file.write_text(json.dumps(lines[0]) + "\n", encoding="utf-8")
    again = monitor("match", "--jsonl", str(file))
    assert again.returncode == 0 and json.loads(again.stdout)["id"] == 1
    # a file saved with a byte-order mark (Windows tools write one) reads the same
    file.write_text(json.dumps(lines[0]) + "\n", encoding="utf-8-sig")
    marked = monitor("match", "--jsonl", str(file))
    assert marked.returncode == 0 and marked.stdout == again.stdout


@pytest.mark.parametrize("command", ["run", "feeds", "channels", "match", "send-test"])
def test_commands_reject_a_broken_config_without_traceback(write_config, command):
    path = write_config(BROKEN)
    result = monitor(command, "--config", str(path), stdin="")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{path}:7:5:" in result.stderr


def test_send_test_without_token_prints_to_console(tmp_path):
    result = monitor("send-test", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"})
    assert result.returncode == 0, result.stderr
    assert (
        "[syria → @syria_watch]" in result.stdout
        and "sent a sample alert to the console" in result.stdout
    )


def test_match_jsonl_survives_lone_surrogates_and_invisible_text():
    """A ``\\ud800`` escape in the input cannot be written as UTF-8: the line comes out
    escaped (still JSON), not as a traceback; hits point into the text as given."""
    text = "Talks in Astana\ud800 resume \x00 #AstanaTalks"
    stdin = json.dumps({"id": "\ud800", "title": "", "text": text}) + "\n"
    result = monitor("match", "--jsonl", stdin=stdin)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["id"] == "\ud800"
    hits = [h for m in record["matches"] for h in m["hits"]]
    assert hits and all(text[h["start"] : h["end"]] == h["text"] for h in hits)
