"""Delivery: the sender that paces the outbox and the notifiers that post (I/O)."""
