"""Errors the core raises on purpose; each carries a reason fit to show a developer."""

from __future__ import annotations


class KinlineError(Exception):
    """Base class for errors raised by Kinline on purpose."""


class ConfigError(KinlineError):
    """The environment does not describe a runnable service."""


class BadInbound(KinlineError):
    """An inbound webhook is missing a parameter or has one we cannot read."""


class DirectoryImportError(KinlineError):
    """A directory CSV has rows we cannot import; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:20]))
        self.problems = problems
