"""Telegram text: escaping and limits, alerts, digests and operator alerts (pure)."""
