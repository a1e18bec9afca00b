"""gunicorn settings for the web process (``gunicorn -c python:bot.serving APP``).

The Procfile and the webhook bench both use them, so what is measured is what runs.

- gthread workers: a webhook may wait (briefly) for the turn lock of the same number, and
  threads let other numbers' texts go on meanwhile. Few threads per process: Python runs
  one thread at a time per process, and more threads only queue for it (at the same rate
  on 2 cores, 4 processes of 2 threads had half the p99 of 4 of 4; 3 threads keep room
  for webhooks waiting on a lock; see Benchmarks in the README).
- ``gc.freeze()`` once the app is loaded: the 110,000 objects a web process holds after
  start-up (Flask, SQLAlchemy, Twilio, the catalogs) are left out of garbage collection,
  so a full collection looks only at what requests made since (a full collection of
  everything took 40 ms here, a pause for every thread of the process).
"""

from __future__ import annotations

import gc
import os
from typing import Any

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "3"))
accesslog = "-"


def post_worker_init(worker: Any) -> None:
    """Once a worker has loaded the app: keep what it loaded out of garbage collection."""
    gc.freeze()
