"""Durable records (SQL) and the conversation cache (Redis)."""
