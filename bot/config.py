"""One settings object, read from the environment and validated at start-up."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from bot.exceptions import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'var' / 'kinline.db'}"


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def sqlalchemy_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver named for PostgreSQL URLs.

    Args:
        url: A database URL as people write it (``postgresql://...``, ``sqlite:///...``).

    Returns:
        The URL SQLAlchemy should use.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class Settings:
    """Every setting Kinline reads, with its default. See the README for the table."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    public_base_url: str = "http://127.0.0.1:5000"
    secret_key: str = ""
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str | None = None
    bot_number: str = "+15005550006"
    default_region: str = "US"
    conversation_idle_seconds: int = 1800
    lock_wait_seconds: float = 8.0
    trusted_proxies: int = 0
    terms_url: str = "kinline.org/terms"
    terms_version: str = "2026-11"
    support_contact: str = "help@kinline.org"
    max_inbound_chars: int = 5000
    payments: str = "test"
    allow_test_payments: bool = False
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None
    media_dir: str = str(ROOT / "var" / "media")
    max_media_bytes: int = 5 * 1024 * 1024
    tally_delay_seconds: float = 4.0
    chars_per_stamp: int = 6000
    stamps_per_attachment: int = 1
    max_stamps_per_message: int = 10
    max_attachments: int = 5
    link_ttl_seconds: int = 1800
    refund_content_rejections: bool = False
    provider: str = "embedded"
    provider_url: str | None = None
    provider_secret: str | None = None
    twilio_mps: float = 1.0
    quiet_hours: bool = True

    @property
    def console_mode(self) -> bool:
        """True when Twilio is not configured: texts go to the console and the dev phone."""
        return not self.twilio_account_sid

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build and validate settings from environment variables.

        Args:
            environ: The environment to read (``os.environ`` when omitted).
            **overrides: Field values that win over the environment (tests use this).

        Returns:
            The validated settings.

        Raises:
            ConfigError: When a value is missing or malformed.
        """
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        settings = cls(
            database_url=sqlalchemy_url(text("DATABASE_URL") or DEFAULT_DATABASE_URL),
            redis_url=text("REDIS_URL"),
            public_base_url=(text("PUBLIC_BASE_URL") or cls.public_base_url).rstrip("/"),
            secret_key=text("SECRET_KEY") or "",
            twilio_account_sid=text("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=text("TWILIO_AUTH_TOKEN"),
            twilio_from=text("TWILIO_FROM"),
            twilio_messaging_service_sid=text("TWILIO_MESSAGING_SERVICE_SID"),
            twilio_api_base=text("TWILIO_API_BASE"),
            bot_number=text("BOT_NUMBER") or text("TWILIO_FROM") or cls.bot_number,
            default_region=(text("DEFAULT_REGION") or cls.default_region).upper(),
            conversation_idle_seconds=_int(env, "CONVERSATION_IDLE_SECONDS", 1800),
            lock_wait_seconds=_float(env, "LOCK_WAIT_SECONDS", 8.0),
            trusted_proxies=_int(env, "TRUSTED_PROXIES", 0),
            terms_url=text("TERMS_URL") or cls.terms_url,
            terms_version=text("TERMS_VERSION") or cls.terms_version,
            support_contact=text("SUPPORT_CONTACT") or cls.support_contact,
            payments=(text("PAYMENTS") or cls.payments).lower(),
            allow_test_payments=(text("ALLOW_TEST_PAYMENTS") or "") in ("1", "true", "yes"),
            stripe_secret_key=text("STRIPE_SECRET_KEY"),
            stripe_webhook_secret=text("STRIPE_WEBHOOK_SECRET"),
            stripe_api_base=text("STRIPE_API_BASE"),
            media_dir=text("MEDIA_DIR") or cls.media_dir,
            max_media_bytes=_int(env, "MAX_MEDIA_BYTES", cls.max_media_bytes),
            tally_delay_seconds=_float(env, "TALLY_DELAY_SECONDS", cls.tally_delay_seconds),
            chars_per_stamp=_int(env, "CHARS_PER_STAMP", cls.chars_per_stamp),
            stamps_per_attachment=_int(env, "STAMPS_PER_ATTACHMENT", cls.stamps_per_attachment),
            max_stamps_per_message=_int(env, "MAX_STAMPS_PER_MESSAGE", cls.max_stamps_per_message),
            max_attachments=_int(env, "MAX_ATTACHMENTS", cls.max_attachments),
            link_ttl_seconds=_int(env, "LINK_TTL_SECONDS", cls.link_ttl_seconds),
            refund_content_rejections=(text("REFUND_CONTENT_REJECTIONS") or "")
            in ("1", "true", "yes"),
            provider=(text("PROVIDER") or cls.provider).lower(),
            provider_url=text("PROVIDER_URL"),
            provider_secret=text("PROVIDER_SECRET"),
            twilio_mps=_float(env, "TWILIO_MPS", cls.twilio_mps),
            quiet_hours=(text("QUIET_HOURS") or "on").lower() not in ("0", "off", "no", "false"),
        )
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        settings = replace(settings, **overrides)
        return settings.validated()

    def validated(self) -> Settings:
        """Check the combination of settings and fill in development defaults.

        Returns:
            These settings, with a random secret key in console mode when none is set.

        Raises:
            ConfigError: When the settings cannot run a service.
        """
        if not self.public_base_url.startswith(("http://", "https://")):
            raise ConfigError("PUBLIC_BASE_URL must start with http:// or https://")
        if not 0 < self.lock_wait_seconds < 14:
            raise ConfigError("LOCK_WAIT_SECONDS must be between 0 and 14 (Twilio waits 15 s)")
        if self.conversation_idle_seconds < 60:
            raise ConfigError("CONVERSATION_IDLE_SECONDS must be at least 60")
        if self.trusted_proxies < 0:
            raise ConfigError("TRUSTED_PROXIES cannot be negative")
        if self.payments not in ("test", "stripe"):
            raise ConfigError("PAYMENTS must be test or stripe")
        if self.payments == "test" and not self.console_mode and not self.allow_test_payments:
            raise ConfigError(
                "with Twilio configured, set PAYMENTS=stripe (or ALLOW_TEST_PAYMENTS=1 for a"
                " staging number): the test checkout gives stamps for test cards"
            )
        if self.payments == "stripe" and not (
            self.stripe_secret_key and self.stripe_webhook_secret
        ):
            raise ConfigError("PAYMENTS=stripe needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET")
        for name in ("chars_per_stamp", "max_stamps_per_message", "max_media_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.upper()} must be at least 1")
        for name in ("stamps_per_attachment", "max_attachments"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.upper()} cannot be negative")
        if not 0 <= self.tally_delay_seconds <= 60:
            raise ConfigError("TALLY_DELAY_SECONDS must be between 0 and 60")
        if self.link_ttl_seconds < 60:
            raise ConfigError("LINK_TTL_SECONDS must be at least 60")
        if self.provider not in ("embedded", "http"):
            raise ConfigError("PROVIDER must be embedded or http")
        if self.provider == "http" and not (self.provider_url and self.provider_secret):
            raise ConfigError("PROVIDER=http needs PROVIDER_URL and PROVIDER_SECRET")
        if self.twilio_mps <= 0:
            raise ConfigError("TWILIO_MPS must be more than 0")
        if not self.console_mode:
            missing = [
                name
                for name, value in (
                    ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                    ("SECRET_KEY", self.secret_key),
                )
                if not value
            ]
            if not (self.twilio_from or self.twilio_messaging_service_sid):
                missing.append("TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID")
            if missing:
                raise ConfigError("Twilio mode needs " + ", ".join(missing))
        if not self.secret_key:
            return replace(self, secret_key=secrets.token_hex(32))
        return self
