"""Webhook throughput and latency: Kinline under gunicorn against a bare Flask app.

Both run with the web process's gunicorn settings (``bot/serving.py``) on the same
machine, and get the same signed requests from the same load generator (``bench.load``)
in one run. Kinline's requests are whole conversations from thousands of numbers:
onboarding, lookups by ID and by name, writing a message in fragments, keywords.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench import load
from bench.common import ROOT, percentiles
from bench.directory import load as load_directory
from bench.directory import synthetic_people
from bot import directory
from bot.store.db import Database
from bot.store.migrate import upgrade

TOKEN = "bench-twilio-token"
PUBLIC = "https://kinline.example.org"
BOT = "+15005550006"
# Another checkout's app against the same load (a before/after): BENCH_APP_ROOT=/path.
APP_ROOT = os.environ.get("BENCH_APP_ROOT", str(ROOT))
# The web process's own settings (bot/serving.py, as the Procfile runs it); BENCH_GUNICORN
# gives others (an old checkout's, say).
GUNICORN = os.environ.get("BENCH_GUNICORN", "-c python:bot.serving").split()
CONNECTIONS = 64
FRAGMENTS = [
    "Hi mijo, it's Mom. We all miss you and think about you every day.",
    "Your sister had the baby, a girl, 7 pounds. Her name is Lucia.",
    "I put money on your books Friday. Write back when you can. Love you.",
]


def scripts(people: list[dict[str, Any]], count: int, rng: random.Random) -> list[list[str]]:
    """What ``count`` people text, each a whole conversation, in a realistic mix."""
    conversations = []
    for n in range(count):
        person = rng.choice(people)
        kind = n % 4
        state = directory.states()[person["state"]].name
        opening = ["Hi", "YES", state]
        if kind == 0:  # a lookup by ID, then a message in three texts
            texts = [*opening, person["inmate_id"], "yes", "1", *FRAGMENTS]
        elif kind == 1:  # a lookup by name
            texts = [*opening, person["last_name"], "1", "yes", "MENU", "STATUS"]
        elif kind == 2:  # a wrong ID first, then the right one
            texts = [*opening, "12", person["inmate_id"], "yes", "HELP", "1", FRAGMENTS[0]]
        else:  # someone who asks before agreeing
            texts = ["Hello?", "HELP", "YES", state, person["inmate_id"], "no", "MENU"]
        conversations.append(texts)
    return conversations


def requests_for(conversations: list[list[str]], first_number: int, host: str) -> list[list[bytes]]:
    """Each conversation's texts as signed raw HTTP requests, in order."""
    validator = RequestValidator(TOKEN)
    url = f"{PUBLIC}/sms/inbound"
    built = []
    for n, texts in enumerate(conversations):
        number = f"+1737{first_number + n:07d}"
        requests = []
        for step, body in enumerate(texts):
            sid = f"SM{first_number + n:016x}{step:016x}"
            form = {
                "MessageSid": sid, "SmsMessageSid": sid, "AccountSid": "AC" + "0" * 32,
                "From": number, "To": BOT, "Body": body, "NumMedia": "0", "NumSegments": "1",
                "ApiVersion": "2010-04-01",
            }  # fmt: skip
            payload = urlencode(form).encode()
            signature = validator.compute_signature(url, form)
            head = (
                f"POST /sms/inbound HTTP/1.1\r\nHost: {host}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(payload)}\r\nX-Twilio-Signature: {signature}\r\n\r\n"
            )
            requests.append(head.encode() + payload)
        built.append(requests)
    return built


def lanes_of(conversations: list[list[bytes]], count: int) -> list[list[bytes]]:
    """Spread people over ``count`` connections; each connection takes its people's texts
    in turns (everyone's first text, then everyone's second, ...)."""
    lanes: list[list[bytes]] = [[] for _ in range(count)]
    for lane_number, lane in enumerate(lanes):
        mine = conversations[lane_number::count]
        for step in range(max((len(c) for c in mine), default=0)):
            lane.extend(c[step] for c in mine if step < len(c))
    return lanes


def settings_of_gunicorn() -> str:
    """What the web processes run as, in words."""
    if "BENCH_GUNICORN" in os.environ:
        return " ".join(GUNICORN)
    from bot import serving

    return f"{serving.workers} processes of {serving.threads} threads ({serving.worker_class})"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """gunicorn serving ``app`` with the web process's settings, until stopped."""

    def __init__(self, app: str, env: dict[str, str], cwd: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", *GUNICORN, app],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1):
                    break
            except OSError as error:
                if getattr(error, "code", None):  # an HTTP answer (404): it is up
                    break
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"{app} did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def measure(port: int, build: Any, seconds: float, rate: float | None = None) -> dict[str, Any]:
    outcome = load.run("127.0.0.1", port, build(), seconds, rate)
    return {
        "requests": outcome.sent,
        "errors": outcome.errors,
        "reconnects": outcome.reconnects,
        "statuses": {str(k): v for k, v in sorted(outcome.statuses.items())},
        "per_second": round(outcome.rate, 1),
        "latency": percentiles(outcome.latencies) if outcome.latencies else {},
        "load_generator_cpu": round(outcome.cpu_seconds / outcome.seconds, 2)
        if outcome.seconds
        else 0.0,
    }


def bench_webhook(
    database_url: str, redis_url: str, label: str, seconds: float = 8.0
) -> dict[str, Any]:
    """Kinline and the bare app at their maximum, then both at half Kinline's maximum."""
    rng = random.Random(5)
    upgrade(database_url)
    db = Database(database_url)
    facilities, people = synthetic_people(rng, 60_000)
    load_directory(db, facilities, people)
    db.dispose()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PUBLIC_BASE_URL": PUBLIC,
        "SECRET_KEY": "bench-secret-key",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM": BOT,
        "ALLOW_TEST_PAYMENTS": "1",
        "QUIET_HOURS": "off",
    }
    numbers = iter(range(0, 10_000_000, 100_000))  # a fresh block of numbers per phase

    def traffic(people_count: int) -> Any:
        first = next(numbers)
        host = "127.0.0.1"
        conversations = requests_for(scripts(people, people_count, rng), first, host)
        return lambda: lanes_of(conversations, CONNECTIONS)

    results: dict[str, Any] = {
        "database": label,
        "connections": CONNECTIONS,
        "gunicorn": settings_of_gunicorn(),
    }
    phases = {
        "kinline": ("webhooks:create_app()", APP_ROOT),
        "bare": ("bench.bare:create_app()", str(ROOT)),
    }
    for name, (app, cwd) in phases.items():
        server = Server(app, env, cwd)
        try:
            measure(server.port, traffic(2_000), 4.0)  # warm-up: imports, pools, caches
            results[name] = {"max": measure(server.port, traffic(8_000), seconds)}
        finally:
            server.stop()
    half = round(results["kinline"]["max"]["per_second"] / 2, 1)
    results["rate_is"] = "half of Kinline's most"
    if os.environ.get("BENCH_RATE"):  # a set rate, to compare two runs
        half, results["rate_is"] = float(os.environ["BENCH_RATE"]), "BENCH_RATE"
    steady = 2 * seconds  # a longer window: p99 rests on more than a handful of samples
    people_needed = int(half * steady / 6) + CONNECTIONS
    for name, (app, cwd) in phases.items():
        server = Server(app, env, cwd)
        try:
            measure(server.port, traffic(people_needed), 4.0, half)  # steady state first
            results[name]["fixed"] = measure(server.port, traffic(people_needed), steady, half)
        finally:
            server.stop()
    results["fixed_rate"] = half
    results["ratio"] = round(
        results["kinline"]["max"]["per_second"] / results["bare"]["max"]["per_second"], 3
    )
    return results
