"""Photos and videos people send by MMS: what is accepted, fetching, and storage."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import requests

from bot.config import Settings
from bot.store.models import Facility

logger = logging.getLogger(__name__)

PHOTO_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif"}
VIDEO_TYPES = {"video/mp4": "mp4", "video/3gpp": "3gp", "video/quicktime": "mov"}
FETCH_TIMEOUT = (5, 30)  # connect, read


def kind_of(content_type: str) -> str | None:
    """``photo``, ``video`` or None for a media type we do not carry."""
    base = content_type.split(";")[0].strip().lower()
    if base in PHOTO_TYPES:
        return "photo"
    if base in VIDEO_TYPES:
        return "video"
    return None


def refusal(facility: Facility, content_type: str) -> str | None:
    """Why ``facility`` cannot take media of this type (a catalog reason), or None."""
    kind = kind_of(content_type)
    if kind is None:
        return "bad_type"
    if kind == "photo" and not facility.photos:
        return "no_photos"
    if kind == "video" and not facility.videograms:
        return "no_video"
    return None


def sniff(data: bytes) -> str | None:
    """The media type the bytes really are (by their first bytes), if we carry it."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand.startswith(b"3g"):
            return "video/3gpp"
        if brand == b"qt  ":
            return "video/quicktime"
        return "video/mp4"
    return None


class Storage(Protocol):
    """Where media files are kept."""

    def save(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (replacing what was there)."""
        ...

    def load(self, key: str) -> bytes:
        """The bytes stored under ``key``."""
        ...


class LocalStorage:
    """Media files in a folder (``MEDIA_DIR``, ``var/media`` by default)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"media key escapes the media folder: {key!r}")
        return path

    def save(self, key: str, data: bytes) -> None:
        """Write the file atomically (a half-written file is never seen)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        partial.write_bytes(data)
        partial.replace(path)

    def load(self, key: str) -> bytes:
        """Read a stored file."""
        return self._path(key).read_bytes()


@dataclass(frozen=True)
class Fetched:
    """Media downloaded from the provider, or why it could not be used."""

    data: bytes | None
    content_type: str | None
    reason: str | None


def twilio_host(settings: Settings, url: str) -> bool:
    """True when ``url`` is Twilio's (or the configured Twilio API base's): only there do
    the account credentials go."""
    host = urlsplit(url).hostname or ""
    allowed = {"api.twilio.com"}
    if settings.twilio_api_base:
        allowed.add(urlsplit(settings.twilio_api_base).hostname or "")
    return host in allowed or host.endswith(".twilio.com")


def fetch(settings: Settings, url: str) -> Fetched:
    """Download one media file with the Twilio credentials, within the size limit.

    Returns:
        The bytes and their sniffed type, or a reason: ``unreachable``, ``too_big``,
        ``not_media``.
    """
    auth = None
    if settings.twilio_account_sid and settings.twilio_auth_token and twilio_host(settings, url):
        auth = (settings.twilio_account_sid, settings.twilio_auth_token)
    # Connection errors and timeouts propagate: the job is retried.
    with requests.get(url, auth=auth, timeout=FETCH_TIMEOUT, stream=True) as response:
        if response.status_code >= 500:
            raise requests.ConnectionError(f"media server answered {response.status_code}")
        if response.status_code != 200:
            logger.warning("media %s answered %s", url, response.status_code)
            return Fetched(None, None, "unreachable")
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > settings.max_media_bytes:
                return Fetched(None, None, "too_big")
            chunks.append(chunk)
    data = b"".join(chunks)
    real = sniff(data)
    if real is None:
        return Fetched(None, None, "not_media")
    return Fetched(data, real, None)
