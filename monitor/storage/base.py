"""What every storage part shares: the engine, the UTC datetime type, and the
one place where database errors become ours.

Every public method of every part is wrapped by :func:`wrap_exceptions`
(``StoreBase.__init_subclass__`` does it), so a method added later cannot
leak a raw SQLAlchemy error to a caller (the idea is lemon24/reader's
``wrap_exceptions`` over its storage mixins).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.exceptions import StorageError, StorageUnavailable

P = ParamSpec("P")
R = TypeVar("R")

#: Errors that mean "the database is not there right now" rather than "it refused".
_UNAVAILABLE: tuple[type[sa.exc.SQLAlchemyError], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DisconnectionError,
    sa.exc.TimeoutError,  # no pooled connection came free in time
)
_WRAPPED = "_monitor_wraps_storage_errors"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to storage")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def translate_error(exc: sa.exc.SQLAlchemyError, operation: str) -> StorageError:
    """Our error for a SQLAlchemy one; the message names the operation, not the SQL."""
    unavailable = isinstance(exc, _UNAVAILABLE) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    )
    reason = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    detail = " ".join(str(reason).split())[:300] or type(reason).__name__
    if unavailable:
        return StorageUnavailable(f"{operation}: database unavailable: {detail}")
    return StorageError(f"{operation}: database error: {detail}")


def wrap_exceptions(func: Callable[P, R]) -> Callable[P, R]:
    """Raise ``StorageUnavailable``/``StorageError`` (cause kept) for any SQLAlchemy error."""
    if getattr(func, _WRAPPED, False):
        return func

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except sa.exc.SQLAlchemyError as exc:
            raise translate_error(exc, func.__name__) from exc

    setattr(wrapper, _WRAPPED, True)
    return wrapper


class StoreBase:
    """The engine and its lifetime; every subclass's public methods translate errors."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(value):
                setattr(cls, name, wrap_exceptions(value))

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = make_engine(url)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StorageError(f"bad DATABASE_URL {redact(url)!r}: {exc}") from exc

    @wrap_exceptions
    def close(self) -> None:
        self.engine.dispose()

    @wrap_exceptions
    def ping(self) -> bool:
        """True when the database answers (for /healthz)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True


class Conflict(Exception):
    """Internal: another worker changed the rows first; the transaction is undone."""


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def insert(conn: sa.Connection) -> Any:
    """The dialect's INSERT (both have ``on_conflict_do_nothing``).

    Imported here: the connection has loaded its own dialect already, and a
    SQLite worker need not import PostgreSQL's (start-up time)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def utcnow() -> datetime:
    return datetime.now(UTC)


def redact(url: str) -> str:
    """A database URL with its password hidden, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"
