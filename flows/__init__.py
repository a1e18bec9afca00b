"""Conversation flows, one module each. Importing this package registers them all."""

from flows import compose, lookup, menu, onboarding, stamps

__all__ = ["compose", "lookup", "menu", "onboarding", "stamps"]
