"""Storage: the one ``Store`` over SQLite or PostgreSQL (I/O).

``store.py`` assembles the parts: ``base`` (engine, UTC type, error
translation), ``schema`` (tables, migrations), ``feeds``, ``entries``,
``outbox``, ``digests``, ``leases``, ``mutes``, ``reports``.
"""

from monitor.storage.feeds import UnchangedPoll
from monitor.storage.outbox import ALERT_RETENTION, OutboxAlert
from monitor.storage.schema import SCHEMA_VERSION
from monitor.storage.store import Store

__all__ = ["ALERT_RETENTION", "SCHEMA_VERSION", "OutboxAlert", "Store", "UnchangedPoll"]
