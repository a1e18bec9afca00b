"""RQ worker entry point: runs jobs and the scheduler for Kinline's queues.

Jobs run in the worker process itself (RQ's ``SimpleWorker``), one after another, with the
worker's SQL and Redis connections. A work horse forked per job (RQ's ``Worker``) opens new
connections and re-imports lazily loaded modules for every text, which cost three quarters
of the sending rate (23 against 86 texts a second per process, on PostgreSQL), and it
inherits the parent's pooled SQL connections. Run more worker processes for more
throughput. A job still has its timeout (RQ's alarm signal), and
a worker that dies mid-job leaves nothing half done: every job checks its rows first.
"""

from __future__ import annotations

import gc
import logging

from rq import SimpleWorker

import bot.engine  # flows load once, before the first job
import bot.jobs
from bot import runtime
from bot.config import Settings
from bot.runtime import Runtime

logger = logging.getLogger(__name__)

MAINTENANCE_SECONDS = 60


def main() -> None:
    """Start a worker with the scheduler on the Kinline queues (answers before notices)."""
    runtime.configure_logging()
    rt = Runtime.create(Settings.from_env())
    runtime.install(rt)
    from bot import providers

    providers.ensure_mail_runs(rt)
    bot.jobs.schedule_maintenance(rt)
    stale = bot.jobs.sweep_stale(rt)
    if stale:
        logger.warning("queued %s conversation(s) with texts left unanswered", stale)
    rt.db.dispose()  # the scheduler is a forked process: it takes no SQL connection along
    # Maintenance every minute (RQ's default is ten): it is where a worker takes over the
    # scheduler from one that died, whose lock lasts a minute, so a worker restarted at once
    # runs tallies, retries and deferred texts within two minutes, not ten.
    worker = SimpleWorker(rt.queues, connection=rt.redis, maintenance_interval=MAINTENANCE_SECONDS)
    gc.freeze()  # what start-up loaded stays out of garbage collection (as in bot/serving.py)
    worker.work(with_scheduler=True)


if __name__ == "__main__":
    main()
