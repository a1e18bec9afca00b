"""Outbound pace: notifications through RQ and real ``worker.py`` processes to a local
Twilio API double, counted where Twilio would count them (as they arrive at the API).

Every row is a real catalog notification (English, and Spanish for one family in five,
which is longer and often two segments), queued with ``notify.queue_text`` and
``jobs.enqueue_sms`` as the delivery code does; the workers are started only once all of
them are queued, so the run measures the sending and not the queueing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from bench.common import ROOT
from bot import i18n, jobs, notify, sms
from bot.config import Settings
from bot.runtime import Runtime
from bot.store.migrate import upgrade
from bot.store.models import Account, OutboundSms
from tests.fakes import FakeTwilioApi, Served

FROM = "+15005550006"
FIRST_NAMES = ["Marcus", "Ana", "DeShawn", "Rosa", "Tyrone", "Guadalupe", "Kevin", "Jasmine"]
FACILITIES = ["Huntsville Unit", "Coffield Unit", "Mountain View Unit", "Wynne Unit"]


@dataclass
class TimedTwilioApi(FakeTwilioApi):
    """The Twilio double, noting when each message was created and how many segments
    Twilio would bill for it."""

    arrivals: list[tuple[float, int]] = field(default_factory=list)

    def answer(self, method: str, path: str, headers: Any, body: bytes) -> Served:
        served = super().answer(method, path, headers, body)
        if method == "POST" and served.status == 201:
            with self.lock:
                segments = sms.segment_count(self.messages[-1]["body"] or "")
                self.arrivals.append((time.monotonic(), segments))
        return served


def busiest_window(arrivals: list[tuple[float, int]], width: float = 1.0) -> int:
    """The most segments that arrived in any window [t, t + width)."""
    ordered = sorted(arrivals)
    best = total = start = 0
    for end in range(len(ordered)):
        total += ordered[end][1]
        while ordered[end][0] - ordered[start][0] >= width:
            total -= ordered[start][1]
            start += 1
        best = max(best, total)
    return best


def queue_notifications(rt: Runtime, count: int) -> list[int]:
    """``count`` delivered-notifications for as many families; returns the row ids."""
    ids = []
    with rt.db.session() as session:
        for n in range(count):
            language = "es" if n % 5 == 0 else "en"
            account = Account(phone=f"+1512{n:07d}", language=language)
            session.add(account)
            body = i18n.text(
                language,
                "delivery.delivered",
                ref=f"K{n:05d}",
                first=FIRST_NAMES[n % len(FIRST_NAMES)],
                facility=FACILITIES[n % len(FACILITIES)],
                time="Nov 26, 6:00 PM" if language == "en" else "26 nov., 18:00",
            )
            out = notify.queue_text(session, rt, account, body, f"bench:delivered:{n}")
            assert out is not None
            ids.append(out.id)
        session.commit()
        rows = list(session.scalars(select(OutboundSms).where(OutboundSms.id.in_(ids))))
    for row in rows:
        jobs.enqueue_sms(rt, row)
    return ids


def bench_outbound(
    database_url: str, redis_url: str, label: str, count: int, mps: float, workers: int
) -> dict[str, Any]:
    """Send ``count`` notifications with ``workers`` RQ workers at ``TWILIO_MPS=mps``."""
    upgrade(database_url)
    api = TimedTwilioApi(auth_token="bench-twilio-token")
    with api.running():
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PUBLIC_BASE_URL": "https://kinline.example.org",
            "SECRET_KEY": "bench-secret-key",
            "TWILIO_ACCOUNT_SID": api.account_sid,
            "TWILIO_AUTH_TOKEN": api.auth_token,
            "TWILIO_FROM": FROM,
            "TWILIO_API_BASE": api.url,
            "ALLOW_TEST_PAYMENTS": "1",
            "TWILIO_MPS": str(mps),
            "QUIET_HOURS": "off",
        }
        settings = Settings.from_env(env)
        rt = Runtime.create(settings)
        rt.redis.flushdb()
        ids = queue_notifications(rt, count)
        began = time.monotonic()
        processes = [
            subprocess.Popen(
                [sys.executable, "worker.py"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        deadline = began + count / mps * 3 + 60
        pending = count
        try:
            while pending and time.monotonic() < deadline:
                time.sleep(0.5)
                with rt.db.session() as session:
                    pending = (
                        session.scalar(
                            select(func.count())
                            .select_from(OutboundSms)
                            .where(OutboundSms.status.in_(("queued", "sending")))
                        )
                        or 0
                    )
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
        finished = time.monotonic()
        with rt.db.session() as session:
            statuses = Counter(
                session.scalars(select(OutboundSms.status).where(OutboundSms.id.in_(ids)))
            )
            sids = set(
                session.scalars(select(OutboundSms.provider_sid).where(OutboundSms.id.in_(ids)))
            )
        rt.close()
    arrivals = api.arrivals
    sent_pairs = Counter((m["to"], m["body"]) for m in api.messages)
    duplicates = sum(n - 1 for n in sent_pairs.values())
    delivered = {m["sid"] for m in api.messages}
    lost = count - len(sent_pairs)
    segments = sum(s for _, s in arrivals)
    times = sorted(t for t, _ in arrivals)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "database": label,
        "texts": count,
        "workers": workers,
        "mps": mps,
        "segments": segments,
        "seconds": round(finished - began, 1),
        "sending_seconds": round(span, 2),
        "segments_per_second": round(segments / span, 1) if span else 0.0,
        "busiest_window_segments": busiest_window(arrivals),
        "duplicates": duplicates,
        "lost": lost,
        "statuses": dict(statuses),
        "sids_match": sids == delivered,
    }
