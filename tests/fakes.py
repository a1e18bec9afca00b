"""Fakes of the outside world, at the HTTP edge only: Twilio's media URLs and Stripe's API.

Each is a real HTTP server on 127.0.0.1 in a thread, so our code talks to it with the same
libraries (requests, stripe) it uses in production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

# A real 1x1 JPEG and PNG, so content sniffing sees the real thing.
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwc"
    "KDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAA"
    "AAAAAAAAAAD/2gAIAQEAAD8AKp//2Q=="
)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@dataclass
class Served:
    """What a fake server answers at a path."""

    body: bytes
    content_type: str
    status: int = 200


@dataclass
class FakeServer:
    """A tiny HTTP server; subclasses decide the answers."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, path: str, headers: Any, body: bytes) -> Served:
        raise NotImplementedError

    @contextmanager
    def running(self) -> Iterator[FakeServer]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append(
                    {
                        "method": method,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                served = fake.answer(method, self.path, self.headers, body)
                self.send_response(served.status)
                self.send_header("Content-Type", served.content_type)
                self.send_header("Content-Length", str(len(served.body)))
                self.end_headers()
                self.wfile.write(served.body)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


@dataclass
class FakeTwilioMedia(FakeServer):
    """Serves MMS media like ``api.twilio.com/.../Media/ME...``, behind basic auth."""

    files: dict[str, Served] = field(default_factory=dict)
    auth: tuple[str, str] | None = None

    def add(self, name: str, body: bytes, content_type: str) -> str:
        """Serve ``body`` at ``/Media/<name>``; returns its URL."""
        self.files[f"/Media/{name}"] = Served(body, content_type)
        return f"{self.url}/Media/{name}"

    def answer(self, method: str, path: str, headers: Any, body: bytes) -> Served:
        if self.auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
            if headers.get("Authorization") != expected:
                return Served(b'{"message": "Authenticate"}', "application/json", 401)
        return self.files.get(path, Served(b"not found", "text/plain", 404))


@dataclass
class FakeStripe(FakeServer):
    """Enough of Stripe's API for Checkout: sessions, idempotency keys, auth."""

    api_key: str = "sk_test_kinline"
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_idempotency_key: dict[str, str] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def answer(self, method: str, path: str, headers: Any, body: bytes) -> Served:
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._json({"error": {"type": "invalid_request_error"}}, 401)
        if method == "POST" and path == "/v1/checkout/sessions":
            key = headers.get("Idempotency-Key")
            if key and key in self.by_idempotency_key:
                return self._json(self.sessions[self.by_idempotency_key[key]])
            form = dict(parse_qsl(body.decode()))
            session_id = f"cs_test_{next(self._ids):04d}"
            session = {
                "id": session_id,
                "object": "checkout.session",
                "mode": form.get("mode"),
                "url": f"{self.url}/pay/{session_id}",
                "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
                "currency": form["line_items[0][price_data][currency]"],
                "client_reference_id": form.get("client_reference_id"),
                "metadata": {"purchase_id": form.get("metadata[purchase_id]")},
                "payment_status": "unpaid",
                "status": "open",
                "success_url": form.get("success_url"),
            }
            self.sessions[session_id] = session
            if key:
                self.by_idempotency_key[key] = session_id
            return self._json(session)
        return self._json({"error": {"type": "invalid_request_error"}}, 404)

    @staticmethod
    def _json(data: dict[str, Any], status: int = 200) -> Served:
        return Served(json.dumps(data).encode(), "application/json", status)

    def completed_event(self, session_id: str, event_id: str = "evt_test_1") -> dict[str, Any]:
        """The ``checkout.session.completed`` event Stripe sends after payment."""
        return self.event(session_id, "checkout.session.completed", event_id)

    def event(
        self, session_id: str, kind: str, event_id: str, payment_status: str = "paid"
    ) -> dict[str, Any]:
        """A ``checkout.session.*`` event of ``kind`` for a session, as Stripe sends it.

        ``completed`` with ``unpaid`` is a delayed payment still on its way; it ends in
        ``async_payment_succeeded`` (``paid``) or ``async_payment_failed`` (``unpaid``).
        """
        session = dict(self.sessions[session_id], payment_status=payment_status)
        session["status"] = "complete"
        return {
            "id": event_id,
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "data": {"object": session},
        }


def stripe_signature(secret: str, payload: bytes, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header: ``t=<time>,v1=<HMAC-SHA256 of "t.payload">``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class FakeTwilioApi(FakeServer):
    """Twilio's Messages API: create (with scripted errors) and list, in Twilio's JSON.

    ``errors`` is a list of (http status, Twilio code) answers given to the next creates,
    in order; ``refuse`` maps a recipient to the error its creates always get; with
    ``hold`` set, a create is recorded and then waits until ``release`` is set (a worker
    killed then has handed the text to Twilio without hearing back).
    """

    account_sid: str = "AC" + "5" * 32
    auth_token: str = "twilio-auth-token"
    messages: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[int, int]] = field(default_factory=list)
    refuse: dict[str, tuple[int, int]] = field(default_factory=dict)
    hold: threading.Event | None = None
    release: threading.Event = field(default_factory=threading.Event)
    received: threading.Event = field(default_factory=threading.Event)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    lock: Any = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, headers: Any, body: bytes) -> Served:
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        if headers.get("Authorization") != expected:
            return self._json({"code": 20003, "message": "Authenticate", "status": 401}, 401)
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        if method == "POST" and path == base:
            form = dict(parse_qsl(body.decode()))
            with self.lock:
                error = self.refuse.get(form.get("To", "")) or (
                    self.errors.pop(0) if self.errors else None
                )
                if error is not None:
                    status, code = error
                    return self._json(
                        {"code": code, "message": f"error {code}", "status": status}, status
                    )
                message = {
                    "sid": f"SM{next(self._ids):032x}",
                    "account_sid": self.account_sid,
                    "to": form.get("To"),
                    "from": form.get("From"),
                    "messaging_service_sid": form.get("MessagingServiceSid"),
                    "body": form.get("Body"),
                    "status": "queued",
                    "status_callback": form.get("StatusCallback"),
                    "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                    "date_sent": None,
                    "num_segments": "1",
                    "direction": "outbound-api",
                    "error_code": None,
                    "uri": f"{base[:-5]}/SM.json",
                }
                self.messages.append(message)
            self.received.set()
            if self.hold is not None and self.hold.is_set():
                self.release.wait(30)
            return self._json(message, 201)
        if method == "GET" and path.startswith(base):
            query = dict(parse_qsl(path.partition("?")[2]))
            found = [m for m in self.messages if m["to"] == query.get("To", m["to"])]
            page = {
                "messages": found, "page": 0, "page_size": 50, "first_page_uri": path,
                "next_page_uri": None, "previous_page_uri": None, "uri": path, "start": 0,
                "end": len(found),
            }  # fmt: skip
            return self._json(page)
        return self._json({"code": 20404, "message": "not found", "status": 404}, 404)

    @staticmethod
    def _json(data: dict[str, Any], status: int = 200) -> Served:
        return Served(json.dumps(data).encode(), "application/json", status)
