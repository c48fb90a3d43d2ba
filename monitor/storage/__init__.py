"""Storage: the one ``Store`` over SQLite or PostgreSQL (I/O).

``store.py`` assembles the parts: ``base`` (engine, UTC type, error
translation), ``schema`` (tables, migrations), ``feeds``, ``entries``,
``outbox``, ``digests``, ``leases``, ``mutes``, ``reports``, ``archive``, ``stories``
(later reports of a story, decided under a per-channel lock), ``surges``
(hourly match counters).
"""

from monitor.storage.archive import ArchivedArticle, ArchiveEntry
from monitor.storage.feeds import UnchangedPoll
from monitor.storage.outbox import ALERT_RETENTION, OutboxAlert
from monitor.storage.schema import SCHEMA_VERSION
from monitor.storage.store import Store
from monitor.storage.stories import StoryUpdate

__all__ = [
    "ALERT_RETENTION",
    "SCHEMA_VERSION",
    "ArchiveEntry",
    "ArchivedArticle",
    "OutboxAlert",
    "Store",
    "StoryUpdate",
    "UnchangedPoll",
]
