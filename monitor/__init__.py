"""monitor — a media-monitoring alert bot: news feeds → multilingual watch rules → Telegram."""

__version__ = "0.1.0"
