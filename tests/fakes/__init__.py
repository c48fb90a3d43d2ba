"""Loopback stand-ins for external services (Telegram Bot API) used by the tests."""
