"""Telegram text: primitives (telegram_text), alerts, digests and operator alerts (pure)."""
