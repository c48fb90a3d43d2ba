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

* SQLite: a contentless FTS5 table ``archive_fts`` (``detail=none``: which
  articles hold a token, nothing more), rowid = ``archive.id``. Deleting from a
  contentless table needs the tokens it was given, so the row keeps them packed
  (5 bytes a key) in ``index_keys``.
* PostgreSQL: ``index_keys`` is a ``tsvector`` of the tokens (given as lexemes,
  never parsed) under a GIN index, queried with ``@@`` and a ``tsquery``.

An article with more than ``MAX_INDEX_KEYS`` keys (a huge page) is stored
without index entries and is a candidate of every query, so nothing is missed.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
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
_FTS_INSERT = sa.text("INSERT INTO archive_fts(rowid, k) VALUES (:id, :k)")
_FTS_DELETE = sa.text("INSERT INTO archive_fts(archive_fts, rowid, k) VALUES ('delete', :id, :k)")
_FTS_DELETE_ALL = sa.text("INSERT INTO archive_fts(archive_fts) VALUES ('delete-all')")


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


def index_token(key: str) -> str:
    """The token one index key is stored and looked up as."""
    return base64.b32encode(_digest(key)).decode("ascii").lower()


def _pack(keys: Iterable[str]) -> bytes:
    return b"".join(sorted({_digest(k) for k in keys}))


def _unpack(blob: bytes) -> str:
    """The space-joined tokens of a packed key set (what FTS5 was given)."""
    data = bytes(blob)
    return " ".join(
        base64.b32encode(data[i : i + _DIGEST]).decode("ascii").lower()
        for i in range(0, len(data), _DIGEST)
    )


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
        if postgres:
            row["tsv"] = " ".join(sorted({index_token(k) for k in entry.keys})) if indexed else ""
        else:
            row["index_keys"] = _pack(entry.keys) if indexed else None
        rows.append(row)
    stmt = insert(conn)(archive_table)
    if postgres:
        stmt = stmt.values(index_keys=sa.cast(sa.bindparam("tsv"), TSVECTOR))
    stmt = stmt.on_conflict_do_nothing(index_elements=["feed_id", "key"]).returning(
        archive_table.c.id, archive_table.c.indexed, archive_table.c.index_keys
    )
    added = conn.execute(stmt, rows).all()
    if not postgres:
        fts_rows = [{"id": r.id, "k": _unpack(r.index_keys)} for r in added if r.indexed]
        if fts_rows:
            conn.execute(_FTS_INSERT, fts_rows)
    return len(added)


class ArchiveMixin(StoreBase):
    """Kept article text: insert, prune, index candidates, read back."""

    def archive_articles(self, entries: Sequence[ArchiveEntry], now: datetime) -> int:
        """Keep these articles' text in one transaction (``commit_poll`` can do it in its own)."""
        with self.engine.begin() as conn:
            return insert_archive(conn, now, entries)

    def prune_archive(self, now: datetime, keep: timedelta) -> int:
        """Forget articles older than ``keep`` (by ``at``); ``keep`` of 0 forgets them all."""
        removed = 0
        with self.engine.begin() as conn:
            if keep <= timedelta(0):
                if conn.dialect.name == "sqlite":
                    conn.execute(_FTS_DELETE_ALL)
                return conn.execute(archive_table.delete()).rowcount or 0
        cutoff = now - keep
        while True:  # batches: short transactions, bounded memory
            with self.engine.begin() as conn:
                batch = conn.execute(
                    sa.select(
                        archive_table.c.id, archive_table.c.indexed, archive_table.c.index_keys
                    )
                    .where(archive_table.c.at < cutoff)
                    .order_by(archive_table.c.at)
                    .limit(1000)
                ).all()
                if not batch:
                    return removed
                if conn.dialect.name == "sqlite":
                    gone = [
                        {"id": r.id, "k": _unpack(r.index_keys)}
                        for r in batch
                        if r.indexed and r.index_keys
                    ]
                    if gone:
                        conn.execute(_FTS_DELETE, gone)
                ids = [r.id for r in batch]
                conn.execute(archive_table.delete().where(archive_table.c.id.in_(ids)))
                removed += len(ids)

    def search_candidates(
        self,
        expr: KeyExpr | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[int]:
        """Ids of archived articles in ``[since, until)`` that may satisfy ``expr``
        (every one when ``expr`` is None: a scan), newest first."""
        c = archive_table.c
        query = sa.select(c.id).order_by(c.at.desc(), c.id.desc())
        if since is not None:
            query = query.where(c.at >= since)
        if until is not None:
            query = query.where(c.at < until)
        with self.engine.connect() as conn:
            if expr is not None:
                if conn.dialect.name == "postgresql":
                    hit = c.index_keys.op("@@")(sa.cast(sa.literal(ts_query(expr)), TSQUERY))
                else:
                    matching = sa.text(
                        "SELECT rowid FROM archive_fts WHERE archive_fts MATCH :q"
                    ).bindparams(q=fts_query(expr))
                    hit = c.id.in_(matching.columns(sa.column("rowid", sa.Integer)))
                query = query.where(sa.or_(hit, c.indexed.is_(False)))
            return list(conn.execute(query).scalars())

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
