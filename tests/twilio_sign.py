"""How Twilio signs a webhook, written out independently of the library we validate with."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """HMAC-SHA1 of the URL followed by each parameter name and value, sorted by name.

    Repeated names contribute every value, in sorted order.
    """
    data = url
    for name, value in sorted(params):
        data += name + value
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
