"""`make run`'s launcher on a bare machine: embedded Redis, SQLite, web and worker."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from redis import Redis
from rq import Worker

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # still starting
            last = error
        time.sleep(0.25)
    raise AssertionError(f"gave up waiting: {last}")


@pytest.mark.slow
def test_launcher_serves_health_dev_phone_and_runs_a_worker(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REDIS_URL", "DATABASE_URL", "TWILIO_"))
    }
    env.update(
        PORT=str(port),
        KINLINE_VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'var' / 'kinline.db'}",
        WEB_CONCURRENCY="1",
    )
    log = (tmp_path / "launch.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.launch"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        health = wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).json())
        assert health == {"ok": True, "console_mode": True}
        output = (tmp_path / "launch.log").read_text()
        assert f"Dev phone: {base}/dev/phone" in output
        desk = re.search(r"Facility desk: \S+  \(desk@kinline.test, password (\S+)\)", output)
        assert desk, output
        login = requests.Session()
        page = login.get(f"{base}/facility/login", timeout=5).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        signed_in = login.post(
            f"{base}/facility/login",
            data={"csrf_token": token, "email": "desk@kinline.test", "password": desk.group(1)},
            timeout=5,
        )
        assert signed_in.status_code == 200 and "Huntsville Unit" in signed_in.text
        assert "Loaded the sample directory" in output
        redis_url = re.search(r"Embedded Redis at (unix://\S+)", output).group(1)
        redis = Redis.from_url(redis_url)
        assert wait_for(lambda: Worker.all(connection=redis))

        browser = requests.Session()
        page = browser.get(f"{base}/dev/phone", timeout=5)
        assert page.status_code == 200
        token = re.search(r'data-csrf-token="([^"]+)"', page.text).group(1)
        sent = browser.post(
            f"{base}/dev/phone/send",
            json={"from": "+15125550142", "body": "Hi"},
            headers={"X-CSRF-Token": token},
            timeout=5,
        )
        assert sent.status_code == 200, sent.text
        events = browser.get(
            f"{base}/dev/phone/log", params={"number": "+15125550142"}, timeout=5
        ).json()["events"]
        assert events[-1]["body"].startswith("Kinline: write to a loved one")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode is not None
