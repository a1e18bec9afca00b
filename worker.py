"""RQ worker entry point: runs jobs and the scheduler for Kinline's queue.

Job modules are imported here, before the worker forks a work horse per job.
"""

from __future__ import annotations

import logging

from rq import Worker

import bot.engine  # flows load once, before the worker forks
import bot.jobs
from bot import runtime
from bot.config import Settings
from bot.runtime import Runtime

logger = logging.getLogger(__name__)


def main() -> None:
    """Start a worker with the scheduler on the Kinline queue."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    rt = Runtime.create(Settings.from_env())
    runtime.install(rt)
    from bot import providers

    providers.ensure_mail_runs(rt)
    bot.jobs.schedule_maintenance(rt)
    stale = bot.jobs.sweep_stale(rt)
    if stale:
        logger.warning("queued %s conversation(s) with texts left unanswered", stale)
    worker = Worker([rt.queue], connection=rt.redis)
    worker.work(with_scheduler=True)


if __name__ == "__main__":
    main()
