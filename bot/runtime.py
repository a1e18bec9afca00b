"""The resources one process uses, built once from settings and passed explicitly."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from rq import Queue

from bot.config import Settings
from bot.exceptions import ConfigError
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.models import utcnow
from bot.transport import Sender, make_sender

logger = logging.getLogger(__name__)

QUEUE_NAME = "kinline"
BULK_QUEUE_NAME = "kinline-bulk"  # notifications: workers take them after everything else


@dataclass
class Runtime:
    """Settings, SQL, Redis, the job queue and the SMS sender of one process.

    Redis is connected on first use, so commands that need only SQL (the directory import,
    migrations) run without it.
    """

    settings: Settings
    db: Database
    sender: Sender
    redis_client: Redis | None = None
    clock: Callable[[], datetime] = utcnow  # what time it is (tests set their own)

    @classmethod
    def create(cls, settings: Settings, sender: Sender | None = None) -> Runtime:
        """Build the resources ``settings`` name. Nothing is contacted until first use."""
        redis = None
        if settings.redis_url:
            redis = Redis.from_url(settings.redis_url, socket_timeout=10, health_check_interval=30)
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            sender=sender or make_sender(settings),
            redis_client=redis,
        )

    @property
    def redis(self) -> Redis:
        """The Redis connection (conversation state, locks, jobs)."""
        if self.redis_client is None:
            raise ConfigError(
                "REDIS_URL is not set: start Kinline with `make run`, which provides one"
            )
        return self.redis_client

    @functools.cached_property
    def conversations(self) -> ConversationStore:
        """Where each person is in the conversation, and the turn locks."""
        return ConversationStore(self.redis, self.settings.conversation_idle_seconds)

    @functools.cached_property
    def queue(self) -> Queue:
        """The RQ queue jobs go to: answers, tallies, media, submissions, mail runs."""
        return Queue(QUEUE_NAME, connection=self.redis)

    @functools.cached_property
    def bulk_queue(self) -> Queue:
        """The queue of notifications (news a person did not just ask for). Workers take
        from it only when ``queue`` is empty, so a mail run's thousand delivery notices,
        waiting their turn at the sender's pace, never hold up an answer to someone
        texting now."""
        return Queue(BULK_QUEUE_NAME, connection=self.redis)

    @property
    def queues(self) -> list[Queue]:
        """Every queue, in the order workers take from them."""
        return [self.queue, self.bulk_queue]

    def close(self) -> None:
        """Release pooled connections."""
        self.db.dispose()
        if self.redis_client is not None:
            self.redis_client.close()


_current: Runtime | None = None


def configure_logging() -> None:
    """Logs for the web and worker processes, unless the host configured logging already.

    ``transitions`` logs every state entered and left at INFO (six lines a text, and a
    measurable cost per webhook): only its warnings are kept.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("transitions").setLevel(logging.WARNING)


def install(runtime: Runtime) -> None:
    """Make ``runtime`` the one job functions use in this process."""
    global _current
    _current = runtime


def current() -> Runtime:
    """The installed runtime, or one built from the environment on first use."""
    global _current
    if _current is None:
        _current = Runtime.create(Settings.from_env())
    return _current
