"""Conversation flows, one module each. Importing this package registers them all."""

from flows import lookup, menu, onboarding

__all__ = ["lookup", "menu", "onboarding"]
