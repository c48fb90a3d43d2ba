"""Prometheus metrics, served on ``GET /metrics`` when ``PORT`` is set.

One registry per process (not the global default), so tests can build
workers side by side. Label values are rule names, outcomes and channel names
— never URLs with credentials, never the token.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter(
    "monitor_polls_total", "Feed polls by outcome", ["outcome"], registry=REGISTRY
)  # outcome: ok, not_modified, error
POLL_SECONDS = Histogram(
    "monitor_poll_duration_seconds",
    "Wall-clock time of one feed poll",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
NEW_ENTRIES = Counter(
    "monitor_new_entries_total", "Entries seen for the first time", registry=REGISTRY
)
MATCHES = Counter("monitor_matches_total", "Articles matched, by rule", ["rule"], registry=REGISTRY)
ALERTS_SENT = Counter("monitor_alerts_sent_total", "Alerts Telegram accepted", registry=REGISTRY)
ALERTS_FAILED = Counter(
    "monitor_alerts_failed_total", "Alerts given up on (kept in the outbox)", registry=REGISTRY
)
ALERTS_PENDING = Gauge("monitor_alerts_pending", "Alerts waiting in the outbox", registry=REGISTRY)
TELEGRAM_429 = Counter(
    "monitor_telegram_429_total", "Flood-control answers from Telegram", registry=REGISTRY
)
FEED_ERRORS = Counter("monitor_feed_errors_total", "Failed feed polls", registry=REGISTRY)
PAGES = Counter(
    "monitor_pages_total",
    "Linked article pages fetched (full_text, page sources)",
    ["outcome"],
    registry=REGISTRY,
)  # outcome: ok, error
RELOAD_FAILURES = Counter(
    "monitor_config_reload_failures_total", "Configuration reloads refused", registry=REGISTRY
)
PHOTO_FALLBACKS = Counter(
    "monitor_photo_fallbacks_total",
    "Photo alerts Telegram refused, sent as text instead",
    registry=REGISTRY,
)
TRANSLATIONS = Counter(
    "monitor_translations_total",
    "Alert translations by outcome",
    ["outcome"],  # translated, same_language, failed
    registry=REGISTRY,
)
TRANSLATE_FAILURES = Counter(
    "monitor_translate_failures_total",
    "Alerts sent untranslated because the translation failed, by reason kind",
    ["kind"],  # timeout, connect, http_5xx, http_429, circuit_open, ...
    registry=REGISTRY,
)
