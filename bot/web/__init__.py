"""Web pages: the dev phone (console mode), later the facility desk and tablet."""

from __future__ import annotations

import functools
import ipaddress
import secrets
from collections.abc import Callable

from flask import current_app, request, session

from bot import i18n
from bot.runtime import Runtime


def is_local(address: str | None) -> bool:
    """True for a loopback address (a request from this machine)."""
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


SIGN_IN_TRIES = 5
SIGN_IN_LOCKOUT = 15 * 60  # seconds


def sign_in_blocked(kind: str, *keys: str) -> bool:
    """True when too many failed sign-ins were made lately for any of ``keys`` (an account,
    an address): guessing a PIN or a password then waits 15 minutes."""
    redis = runtime().redis
    for key in keys:
        tries = redis.get(f"kinline:signin:{kind}:{key}")
        if tries is not None and int(tries) >= SIGN_IN_TRIES:
            return True
    return False


def sign_in_failed(kind: str, *keys: str) -> None:
    """Count a failed sign-in against each of ``keys``."""
    pipe = runtime().redis.pipeline()
    for key in keys:
        pipe.incr(f"kinline:signin:{kind}:{key}")
        pipe.expire(f"kinline:signin:{kind}:{key}", SIGN_IN_LOCKOUT)
    pipe.execute()


def runtime() -> Runtime:
    """The current app's resources."""
    rt: Runtime = current_app.extensions["kinline"]
    return rt


def translator(language: str) -> Callable[..., str]:
    """``t(key, **values)`` for templates: catalog texts in ``language``."""
    return functools.partial(i18n.text, language)


def csrf_token(key: str = "csrf") -> str:
    """The session's form token under ``key`` (made on first use)."""
    token = session.get(key)
    if not isinstance(token, str) or not token:
        token = session[key] = secrets.token_urlsafe(24)
    return token


def csrf_ok(key: str = "csrf", sent: str | None = None) -> bool:
    """True when the token sent (the form's ``csrf_token`` unless given) is the session's,
    compared in constant time."""
    if sent is None:
        sent = request.form.get("csrf_token", "")
    expected = session.get(key)
    if not sent or not isinstance(expected, str) or not expected:
        return False
    return secrets.compare_digest(sent.encode(), expected.encode())
