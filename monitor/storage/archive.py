"""The archive: article text kept for ``defaults.keep_text``, and its search index.

Search and backtest have one notion of a match, the matcher's. The index only
narrows the candidates: per article it holds the matcher's own word keys
(``monitor.match.article_index_keys`` — Arabic proclitic candidates and light
stems, Russian lemmas, English/French bases, joinable compounds), and a query
is a boolean expression over the keys its terms are indexed under
(``monitor.match.index_query``). Every candidate is then confirmed by the
``Matcher`` (``monitor.archive``).

Each key is stored as an 8-letter token: 40 bits of BLAKE2b in base32, so a key
in any script (or holding the matcher's control-character namespaces) is a safe
token on both backends; a collision only adds a candidate the matcher rejects.

* SQLite: one contentless FTS5 table per day of ``at`` (``archive_fts_YYYYMMDD``,
  ``detail=none``: which articles hold a token, nothing more; rowid =
  ``archive.id``). A contentless table can only forget a row given the tokens it
  was given, so pruning never deletes from it: it deletes the archive rows and
  drops whole days. Entries of pruned rows left in the boundary day are harmless
  (candidates are looked up in the archive table, ids are never reused) and go
  with their day. Searching ``--since 7d`` reads the eight newest days only.
* PostgreSQL: ``index_keys`` is a ``tsvector`` of the tokens (given as lexemes,
  never parsed) under a GIN index, queried with ``@@`` and a ``tsquery``.

An article with more than ``MAX_INDEX_KEYS`` keys (a huge page) is stored
without index entries and is a candidate of every query, so nothing is missed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR

from monitor.models import Article
from monitor.storage.base import StoreBase, chunks, insert
from monitor.storage.schema import archive_table

if TYPE_CHECKING:
    from monitor.match import KeyExpr

#: More keys than this and an article is kept unindexed (always a candidate).
MAX_INDEX_KEYS = 20_000
_DIGEST = 5  # bytes of BLAKE2b per key: 8 base32 letters
_ARTICLE_FIELDS = frozenset(f.name for f in dataclasses.fields(Article))
_DAY_TABLE = re.compile(r"archive_fts_(\d{8})\Z")


@dataclass(frozen=True)
class ArchiveEntry:
    """An article to keep, with its index keys (computed outside the transaction)."""

    article: Article
    keys: frozenset[str]


@dataclass(frozen=True)
class ArchivedArticle:
    """An article read back from the archive; ``at`` orders and windows it."""

    id: int
    article: Article
    seen_at: datetime
    at: datetime


def sort_time(published: datetime | None, seen_at: datetime) -> datetime:
    """Publication time, or first-seen time when there is none or it is later
    (a date in the future is a feed's mistake and would sit on top forever)."""
    if published is None or published > seen_at:
        return seen_at
    return published


def _clean(text: str | None) -> str | None:
    """Text both databases accept: no NUL, no lone surrogate (from hostile feeds)."""
    if not text:
        return text
    if "\x00" in text:
        text = text.replace("\x00", " ")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=_DIGEST).digest()


#: Lower-case base32 of every 10-bit value: two letters each (``base64.b32encode`` is
#: pure Python, and an article has hundreds of keys).
_B32_PAIRS = tuple(
    a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567"
)
assert _DIGEST == 5  # 40 bits: four pairs, no padding


@functools.lru_cache(maxsize=1 << 15)  # common words recur in every article; ~7 MB at most
def index_token(key: str) -> str:
    """The token one index key is stored and looked up as: its digest in lower-case
    base32 (``base64.b32encode(_digest(key)).decode().lower()``)."""
    n = int.from_bytes(_digest(key), "big")
    pairs = _B32_PAIRS
    return pairs[n >> 30] + pairs[(n >> 20) & 1023] + pairs[(n >> 10) & 1023] + pairs[n & 1023]


def _day(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%d")


def _day_table(at: datetime) -> str:
    return f"archive_fts_{_day(at)}"


def _day_tables(conn: sa.Connection) -> dict[str, str]:
    """The FTS5 day tables that exist: name → YYYYMMDD."""
    names = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'archive_fts_%'"
    ).scalars()
    return {n: m.group(1) for n in names if (m := _DAY_TABLE.match(n))}


def fts_query(expr: KeyExpr) -> str:
    """An FTS5 MATCH expression (each token quoted, so never an operator)."""
    if isinstance(expr, frozenset):
        tokens = sorted({index_token(k) for k in expr})
        return "(" + " OR ".join(f'"{t}"' for t in tokens) + ")"
    op = " AND " if expr[0] == "and" else " OR "
    return "(" + op.join(fts_query(e) for e in expr[1]) + ")"


def ts_query(expr: KeyExpr) -> str:
    """A PostgreSQL ``tsquery`` in its input syntax (lexemes quoted)."""
    if isinstance(expr, frozenset):
        tokens = sorted({index_token(k) for k in expr})
        return "(" + " | ".join(f"'{t}'" for t in tokens) + ")"
    op = " & " if expr[0] == "and" else " | "
    return "(" + op.join(ts_query(e) for e in expr[1]) + ")"


def insert_archive(conn: sa.Connection, now: datetime, entries: Sequence[ArchiveEntry]) -> int:
    """Keep these articles' text (a repeated ``(feed, key)`` is skipped); returns rows added."""
    if not entries:
        return 0
    postgres = conn.dialect.name == "postgresql"
    rows = []
    by_key: dict[tuple[str, str], tuple[datetime, str]] = {}
    for entry in entries:
        a = entry.article
        indexed = len(entry.keys) <= MAX_INDEX_KEYS
        page = getattr(a, "page", None)
        row: dict[str, Any] = {
            "feed_id": _clean(a.feed_id),
            "key": _clean(a.key),
            "title": _clean(a.title) or "",
            "summary": _clean(a.summary) or "",
            "content": _clean(a.content) or "",
            "page": _clean(page) if isinstance(page, str) and page else None,
            "link": _clean(a.link),
            "published": a.published,
            "seen_at": now,
            "at": sort_time(a.published, now),
            "language": _clean(a.language[:35]) if a.language else None,
            "source": _clean(a.source) or "",
            "indexed": indexed,
        }
        tokens = " ".join(sorted({index_token(k) for k in entry.keys})) if indexed else ""
        if postgres:
            row["tsv"] = tokens
        rows.append(row)
        by_key[(row["feed_id"], row["key"])] = (row["at"], tokens)
    stmt = insert(conn)(archive_table)
    if postgres:
        stmt = stmt.values(index_keys=sa.cast(sa.bindparam("tsv"), TSVECTOR))
    stmt = stmt.on_conflict_do_nothing(index_elements=["feed_id", "key"]).returning(
        archive_table.c.id, archive_table.c.feed_id, archive_table.c.key
    )
    added = conn.execute(stmt, rows).all()
    if not postgres:
        per_day: dict[str, list[dict[str, Any]]] = {}
        for r in added:
            at, tokens = by_key[(r.feed_id, r.key)]
            if tokens:
                per_day.setdefault(_day_table(at), []).append({"id": r.id, "k": tokens})
        for table, day_rows in per_day.items():
            conn.exec_driver_sql(
                f'CREATE VIRTUAL TABLE IF NOT EXISTS "{table}" '
                "USING fts5(k, content='', columnsize=0, detail=none)"
            )
            conn.execute(sa.text(f'INSERT INTO "{table}"(rowid, k) VALUES (:id, :k)'), day_rows)
    return len(added)


class ArchiveMixin(StoreBase):
    """Kept article text: insert, prune, index candidates, read back."""

    def archive_articles(self, entries: Sequence[ArchiveEntry], now: datetime) -> int:
        """Keep these articles' text in one transaction (``commit_poll`` can do it in its own)."""
        with self.engine.begin() as conn:
            return insert_archive(conn, now, entries)

    def prune_archive(self, now: datetime, keep: timedelta) -> int:
        """Forget articles older than ``keep`` (by ``at``); ``keep`` of 0 forgets them all."""
        everything = keep <= timedelta(0)
        cutoff = now - keep
        with self.engine.begin() as conn:
            query = archive_table.delete()
            if not everything:
                query = query.where(archive_table.c.at < cutoff)
            removed = conn.execute(query).rowcount or 0
            if conn.dialect.name == "sqlite":
                first_kept = _day(cutoff)
                for table, day in _day_tables(conn).items():
                    if everything or day < first_kept:
                        conn.exec_driver_sql(f'DROP TABLE "{table}"')
        return removed

    def search_candidates(
        self,
        expr: KeyExpr | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[int]:
        """Ids of archived articles in ``[since, until)`` that may satisfy ``expr``
        (every one when ``expr`` is None: a scan), newest first."""
        c = archive_table.c
        window = []
        if since is not None:
            window.append(c.at >= since)
        if until is not None:
            window.append(c.at < until)
        order = (c.at.desc(), c.id.desc())
        with self.engine.connect() as conn:
            if expr is None:
                return list(conn.execute(sa.select(c.id).where(*window).order_by(*order)).scalars())
            if conn.dialect.name == "postgresql":
                hit = c.index_keys.op("@@")(sa.cast(sa.literal(ts_query(expr)), TSQUERY))
                query = sa.select(c.id).where(sa.or_(hit, c.indexed.is_(False)), *window)
                return list(conn.execute(query.order_by(*order)).scalars())
            found: set[int] = set()
            match = fts_query(expr)
            low = _day(since) if since is not None else ""
            high = _day(until) if until is not None else "99999999"
            for table, day in _day_tables(conn).items():
                if low <= day <= high:
                    found.update(
                        conn.execute(
                            sa.text(f'SELECT rowid FROM "{table}" WHERE "{table}" MATCH :q'),
                            {"q": match},
                        ).scalars()
                    )
            rows: list[tuple[datetime, int]] = []
            for chunk in chunks(sorted(found), 500):
                rows.extend(conn.execute(sa.select(c.at, c.id).where(c.id.in_(chunk), *window)))
            unindexed = sa.select(c.at, c.id).where(c.indexed.is_(False), *window)
            rows.extend(conn.execute(unindexed))
        return [i for _, i in sorted(set(rows), reverse=True)]

    def archived_articles(self, ids: Sequence[int]) -> list[ArchivedArticle]:
        """These archived articles, in the order of ``ids`` (ones pruned meanwhile left out)."""
        found: dict[int, ArchivedArticle] = {}
        c = archive_table.c
        columns = [col for col in archive_table.c if col.name not in ("index_keys", "indexed")]
        with self.engine.connect() as conn:
            for chunk in chunks(list(ids), 500):
                for row in conn.execute(sa.select(*columns).where(c.id.in_(chunk))):
                    found[row.id] = _archived(row)
        return [found[i] for i in ids if i in found]

    def archive_count(self, since: datetime | None = None) -> int:
        """How many articles the archive holds (at or after ``since``)."""
        query = sa.select(sa.func.count()).select_from(archive_table)
        if since is not None:
            query = query.where(archive_table.c.at >= since)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


def _archived(row: Any) -> ArchivedArticle:
    values: dict[str, Any] = {
        "key": row.key,
        "feed_id": row.feed_id,
        "title": row.title,
        "summary": row.summary,
        "content": row.content,
        "link": row.link,
        "published": row.published,
        "language": row.language,
        "source": row.source,
    }
    if "page" in _ARTICLE_FIELDS:  # the full-text feature's field, once it exists
        values["page"] = row.page or ""
    return ArchivedArticle(id=row.id, article=Article(**values), seen_at=row.seen_at, at=row.at)
