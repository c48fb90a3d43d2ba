"""Shared fixtures: the loopback servers, a PostgreSQL URL when one answers, config files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest_plugins = ["tests.fakes.fixtures", "tests.fakes.feedserver"]

REPO = Path(__file__).resolve().parents[1]
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def monitor_command(*args: str) -> list[str]:
    """``python -m monitor ARGS`` with this interpreter."""
    return [sys.executable, "-m", "monitor", *args]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without monitor's own variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "MONITOR_")) and k not in ("DATABASE_URL", "PORT")
    }
    return {**env, **extra}


def run_monitor(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the command line as a user would, from the repository root."""
    return subprocess.run(
        monitor_command(*args),
        capture_output=True,
        text=True,
        env=clean_env(**(env or {})),
        cwd=REPO,
        input=stdin,
        timeout=timeout,
    )


def start_worker_process(config: Path, database_url: str, lock_dir: Path) -> subprocess.Popen:
    """`monitor run` on SQLite in the background; returns once it holds the worker lock."""
    worker = subprocess.Popen(
        monitor_command("run", "--config", str(config)),
        cwd=REPO,
        env=clean_env(DATABASE_URL=database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = lock_dir / "monitor.db.worker-lock"
    deadline = time.monotonic() + 20
    while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return worker


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit a real token, database or config from the developer's shell."""
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL", "DATABASE_URL", "MONITOR_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def now() -> datetime:
    """A fixed clock reading; tests advance it explicitly."""
    return datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a YAML file (dedented) under tmp_path and return its path."""

    def write(text: str, name: str = "monitor.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'monitor.db'}"


def _postgres_url() -> str | None:
    """A reachable PostgreSQL URL (MONITOR_TEST_DATABASE_URL or the local default), else None."""
    url = os.environ.get("MONITOR_TEST_DATABASE_URL", PG_DEFAULT)
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception:
        return None
    return url


_PG = _postgres_url()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test; skipped when no server answers."""
    if _PG is None:
        pytest.skip(
            "PostgreSQL is not reachable (set MONITOR_TEST_DATABASE_URL or start it on "
            "127.0.0.1:5432)"
        )
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(_PG)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in _PG else "?"
    yield f"{_PG}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a storage test on SQLite always and on PostgreSQL when reachable."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    return request.getfixturevalue("postgres_url")
