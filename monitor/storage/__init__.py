"""Storage: the one ``Store`` over SQLite or PostgreSQL (I/O)."""

from monitor.storage.store import SCHEMA_VERSION, OutboxAlert, Store

__all__ = ["SCHEMA_VERSION", "OutboxAlert", "Store"]
