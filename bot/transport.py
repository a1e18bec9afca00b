"""Sending texts (Twilio, or the console in development) and checking Twilio signatures."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.config import Settings

logger = logging.getLogger(__name__)

# Twilio error codes (https://www.twilio.com/docs/api/errors) and what we do about them.
OPTED_OUT = {"21610"}  # the recipient replied STOP to this sender at the carrier
UNREACHABLE = {"21211", "21614", "30005", "30006"}  # invalid, not mobile, unknown, landline
TRANSIENT = {"20429", "30003", "30008"}  # too many requests, unreachable now, unknown error


class SendError(Exception):
    """A text that could not be handed to the provider; ``kind`` says what to do."""

    def __init__(self, kind: str, code: str | None, detail: str) -> None:
        super().__init__(f"{kind} ({code}): {detail}")
        self.kind = kind  # "transient", "opted_out", "unreachable" or "failed"
        self.code = code


def classify(code: str | None, status: int | None) -> str:
    """What a provider error means for us.

    Returns:
        ``transient`` (nothing went out: retry), ``ambiguous`` (it may have gone out: ask
        before retrying), ``opted_out`` or ``unreachable`` (stop for this number), or
        ``failed`` (give up on this text).
    """
    if code in OPTED_OUT:
        return "opted_out"
    if code in UNREACHABLE:
        return "unreachable"
    if code in TRANSIENT or status == 429:
        return "transient"
    if status is not None and status >= 500:
        return "ambiguous"
    return "failed"


class Sender(Protocol):
    """Something that sends one text and returns the provider's message id."""

    def send(self, to: str, body: str, from_number: str, status_callback: str | None) -> str:
        """Send ``body`` to ``to``; return the provider SID. Raises ``SendError``."""
        ...

    def find(self, to: str, body: str, since: datetime, known: set[str]) -> str | None:
        """The SID of a text with this body created for ``to`` since ``since`` that is not
        one of ``known``, if any."""
        ...


class ConsoleSender:
    """Development sender: prints the text; the dev phone shows it from the SMS log."""

    def __init__(self, from_number: str) -> None:
        self.from_number = from_number

    def send(self, to: str, body: str, from_number: str, status_callback: str | None) -> str:
        """Log the text and return a made-up SID."""
        sid = "SMconsole" + secrets.token_hex(12)
        logger.info("SMS %s -> %s (%s): %s", from_number or self.from_number, to, sid, body)
        return sid

    def find(self, to: str, body: str, since: datetime, known: set[str]) -> str | None:
        """The console keeps nothing to look up."""
        return None


class TwilioSender:
    """Sends through Twilio's REST API (``TWILIO_API_BASE`` for a compatible test double).

    ``timeout`` is the connect and read timeout of each call, in seconds. A read timeout
    is ambiguous (Twilio may have created the message): the retry looks before it sends.
    """

    def __init__(
        self, settings: Settings, client: Client | None = None, timeout: float = 15.0
    ) -> None:
        self.settings = settings
        if client is None:
            client = Client(
                settings.twilio_account_sid,
                settings.twilio_auth_token,
                http_client=TwilioHttpClient(timeout=timeout),
            )
            if settings.twilio_api_base:
                client.api.base_url = settings.twilio_api_base
        self.client = client

    def send(self, to: str, body: str, from_number: str, status_callback: str | None) -> str:
        """Create the message at Twilio and return its SID."""
        params: dict[str, Any] = {"to": to, "body": body}
        if self.settings.twilio_messaging_service_sid:
            params["messaging_service_sid"] = self.settings.twilio_messaging_service_sid
        else:
            params["from_"] = from_number or self.settings.twilio_from
        if status_callback:
            params["status_callback"] = status_callback
        try:
            message = self.client.messages.create(**params)
        except TwilioRestException as error:
            code = str(error.code) if error.code else None
            raise SendError(classify(code, error.status), code, error.msg) from error
        except (requests.ConnectTimeout, requests.exceptions.SSLError) as error:
            raise SendError("transient", None, str(error)) from error  # never reached Twilio
        except (requests.ConnectionError, requests.Timeout) as error:
            raise SendError("ambiguous", None, str(error)) from error  # it may have
        return str(message.sid)

    def find(self, to: str, body: str, since: datetime, known: set[str]) -> str | None:
        """Look for a text already created (a worker died, or an answer was lost, before the
        SID was noted): the newest messages to ``to`` with this body, created since the
        attempt, and not already another row's. (No DateSent filter: it is empty while a
        message still waits in Twilio's queue.)"""
        try:
            recent = self.client.messages.list(to=to, limit=50)
        except (TwilioRestException, requests.ConnectionError, requests.Timeout) as error:
            raise SendError("transient", None, f"cannot check what was sent: {error}") from error
        for message in recent:
            created = message.date_created
            fresh = created is not None and created >= since - timedelta(minutes=2)
            if message.body == body and fresh and str(message.sid) not in known:
                return str(message.sid)
        return None


def make_sender(settings: Settings) -> Sender:
    """The console sender without Twilio credentials, the Twilio sender with them."""
    if settings.console_mode:
        return ConsoleSender(settings.bot_number)
    return TwilioSender(settings)


def twilio_signature_ok(
    auth_token: str, url: str, params: Mapping[str, Any], signature: str | None
) -> bool:
    """Check ``X-Twilio-Signature`` for a request Twilio made to ``url``.

    Args:
        auth_token: The account's auth token.
        url: The public URL Twilio called, query string included.
        params: The POST form parameters (a multi-dict keeps repeated keys).
        signature: The header value, or ``None`` when missing.

    Returns:
        True when the signature matches.
    """
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))
