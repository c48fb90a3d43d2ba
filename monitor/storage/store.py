"""The one ``Store``: every storage part over one engine (SQLAlchemy Core).

One schema serves SQLite (the default) and PostgreSQL. Each part is a mixin
over ``StoreBase`` in its own module, one domain each; every public method is
a short transaction and raises only ``StorageError`` (``StorageUnavailable``
when the database cannot be reached), never a raw SQLAlchemy error.
"""

from __future__ import annotations

from monitor.storage.archive import ArchiveMixin
from monitor.storage.digests import DigestsMixin
from monitor.storage.entries import EntriesMixin
from monitor.storage.feeds import FeedsMixin
from monitor.storage.leases import LeasesMixin
from monitor.storage.mutes import MutesMixin
from monitor.storage.outbox import OutboxMixin
from monitor.storage.reports import ReportsMixin
from monitor.storage.schema import SchemaMixin


class Store(
    SchemaMixin,
    FeedsMixin,
    EntriesMixin,
    OutboxMixin,
    DigestsMixin,
    LeasesMixin,
    MutesMixin,
    ReportsMixin,
    ArchiveMixin,
):
    """The one gateway to the database; every method is a short transaction."""
