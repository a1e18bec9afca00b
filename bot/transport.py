"""Sending texts (Twilio, or the console in development) and checking Twilio signatures."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.config import Settings

logger = logging.getLogger(__name__)


class Sender(Protocol):
    """Something that sends one text and returns the provider's message id."""

    def send(self, to: str, body: str) -> str:
        """Send ``body`` to ``to``; return the provider SID."""
        ...


class ConsoleSender:
    """Development sender: prints the text; the dev phone shows it from the SMS log."""

    def __init__(self, from_number: str) -> None:
        self.from_number = from_number

    def send(self, to: str, body: str) -> str:
        """Log the text and return a made-up SID."""
        sid = "SMconsole" + secrets.token_hex(12)
        logger.info("SMS %s -> %s (%s): %s", self.from_number, to, sid, body)
        return sid


class TwilioSender:
    """Sends through Twilio's REST API with the account's credentials."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client or Client(settings.twilio_account_sid, settings.twilio_auth_token)

    def send(self, to: str, body: str) -> str:
        """Create the message at Twilio and return its SID."""
        params: dict[str, Any] = {"to": to, "body": body}
        if self.settings.twilio_messaging_service_sid:
            params["messaging_service_sid"] = self.settings.twilio_messaging_service_sid
        else:
            params["from_"] = self.settings.twilio_from
        message = self.client.messages.create(**params)
        return str(message.sid)


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
