"""Web pages: the dev phone (console mode), later the facility desk and tablet."""

from __future__ import annotations

import ipaddress


def is_local(address: str | None) -> bool:
    """True for a loopback address (a request from this machine)."""
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False
