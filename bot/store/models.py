"""SQL models: accounts, consent, directory, contacts and the SMS log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Account(Base):
    """A family member, keyed by their phone number in E.164.

    A row is created at the first text (the opt-in record: number, language, opt-out);
    ``consent_at`` is set when they reply YES to the terms.
    """

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    language: Mapped[str] = mapped_column(String(5), default="en")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    consent_at: Mapped[datetime | None]
    terms_version: Mapped[str | None] = mapped_column(String(20))
    opted_out_at: Mapped[datetime | None]
    unreachable_at: Mapped[datetime | None]  # the carrier says texts cannot reach it

    contacts: Mapped[list[Contact]] = relationship(back_populates="account")

    @property
    def consented(self) -> bool:
        """True once the person agreed to the terms."""
        return self.consent_at is not None


class Facility(Base):
    """A prison and what it allows; times are in the facility's own time zone."""

    __tablename__ = "facilities"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(2), index=True)
    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64))
    emessages: Mapped[bool] = mapped_column(Boolean)
    photos: Mapped[bool] = mapped_column(Boolean)
    videograms: Mapped[bool] = mapped_column(Boolean)
    replies: Mapped[bool] = mapped_column(Boolean)
    mail_runs: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Inmate(Base):
    """A person in the directory. ``last_key``/``first_key`` are folded for search."""

    __tablename__ = "inmates"
    __table_args__ = (
        UniqueConstraint("state", "id_key"),
        Index("ix_inmates_state_name", "state", "last_key", "first_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(2))
    inmate_id: Mapped[str] = mapped_column(String(20))
    id_key: Mapped[str] = mapped_column(String(20))  # what IDs are matched on: no leading 0s
    first_name: Mapped[str] = mapped_column(String(80))
    last_name: Mapped[str] = mapped_column(String(80))
    first_key: Mapped[str] = mapped_column(String(80))
    last_key: Mapped[str] = mapped_column(String(80))
    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id"))
    status: Mapped[str] = mapped_column(String(10), default="active")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    facility: Mapped[Facility] = relationship(lazy="joined")

    @property
    def full_name(self) -> str:
        """First and last name, as families say it."""
        return f"{self.first_name} {self.last_name}"

    @property
    def short_name(self) -> str:
        """First name and last initial, for lists: ``Ana R.``."""
        return f"{self.first_name} {self.last_name[:1]}."

    @property
    def released(self) -> bool:
        """True when the directory says the person was released."""
        return self.status == "released"


class DirectoryEvent(Base):
    """A change the directory import noticed: a transfer or a release."""

    __tablename__ = "directory_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    inmate_pk: Mapped[int] = mapped_column(ForeignKey("inmates.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    from_facility: Mapped[str | None] = mapped_column(String(32))
    to_facility: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Contact(Base):
    """A person an account writes to. Removal is soft so history keeps its links."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("account_id", "inmate_pk"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    inmate_pk: Mapped[int] = mapped_column(ForeignKey("inmates.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]

    account: Mapped[Account] = relationship(back_populates="contacts")
    inmate: Mapped[Inmate] = relationship(lazy="joined")


class InboundSms(Base):
    """Every text received, written before it is handled; ``reply`` is what we answered."""

    __tablename__ = "inbound_sms"
    __table_args__ = (Index("ix_inbound_sms_pending", "from_number", "to_number", "processed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    from_number: Mapped[str] = mapped_column(String(20))
    to_number: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    reply: Mapped[list[str] | None] = mapped_column(JSON)
    # "twiml" while the webhook waits to answer; "api" once it gave up waiting, so the
    # worker that handles the text sends the replies through the API instead.
    reply_via: Mapped[str] = mapped_column(String(8), default="twiml")


class OutboundSms(Base):
    """Every text we send: TwiML replies and messages sent later by the worker.

    ``idempotency_key`` is unique, so a retried job or a replayed webhook never adds a
    second text.
    """

    __tablename__ = "outbound_sms"
    __table_args__ = (Index("ix_outbound_sms_to", "to_number", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    to_number: Mapped[str] = mapped_column(String(20))
    from_number: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    provider_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    error_code: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    attempted_at: Mapped[datetime | None]
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_sms.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- compose, stamps and payments ---------------------------------------------------


class Draft(Base):
    """A message being written: every text is appended here, so nothing typed is lost."""

    __tablename__ = "drafts"
    __table_args__ = (Index("ix_drafts_account_status", "account_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    inmate_pk: Mapped[int] = mapped_column(ForeignKey("inmates.id"))
    body: Mapped[str] = mapped_column(Text, default="")
    to_number: Mapped[str | None] = mapped_column(String(20))  # our number they write to
    fragments: Mapped[int] = mapped_column(default=0)
    last_fragment_chars: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(12), default="open")  # open, sent, discarded
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    inmate: Mapped[Inmate] = relationship(lazy="joined")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="draft", order_by="Attachment.id"
    )


class Attachment(Base):
    """A photo or video sent by MMS, fetched by a worker and kept in media storage."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    source_key: Mapped[str] = mapped_column(String(80), unique=True)  # MessageSid:index
    source_url: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(10))  # photo, video
    status: Mapped[str] = mapped_column(String(12), default="pending")  # stored, refused, failed
    storage_key: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    draft: Mapped[Draft] = relationship(back_populates="attachments")


class Message(Base):
    """A message paid for and sent for review; ``ref`` is what the family quotes."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(8), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    inmate_pk: Mapped[int] = mapped_column(ForeignKey("inmates.id"))
    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id"))
    state: Mapped[str] = mapped_column(String(2))
    body: Mapped[str] = mapped_column(Text)
    stamps: Mapped[int]
    status: Mapped[str] = mapped_column(String(12), default="queued")
    reason: Mapped[str | None] = mapped_column(String(40))  # why it was rejected or returned
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    inmate: Mapped[Inmate] = relationship(lazy="joined")
    facility: Mapped[Facility] = relationship(lazy="joined")
    attachments: Mapped[list[Attachment]] = relationship(
        primaryjoin="Message.id == Attachment.message_id", order_by="Attachment.id", viewonly=True
    )


class MessageEvent(Base):
    """One step in a message's life, with when and why."""

    __tablename__ = "message_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerEntry(Base):
    """One movement of stamps. The balance is the sum; rows are never changed."""

    __tablename__ = "stamp_ledger"
    __table_args__ = (Index("ix_stamp_ledger_wallet", "account_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    state: Mapped[str] = mapped_column(String(2))
    delta: Mapped[int]
    kind: Mapped[str] = mapped_column(String(12))  # purchase, debit, refund, grant
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Purchase(Base):
    """A bundle of stamps offered through a link, and paid (or not)."""

    __tablename__ = "purchases"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    state: Mapped[str] = mapped_column(String(2))
    stamps: Mapped[int]
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    nonce: Mapped[str] = mapped_column(String(32), unique=True)
    provider: Mapped[str] = mapped_column(String(12))
    provider_ref: Mapped[str | None] = mapped_column(String(255), unique=True)
    checkout_url: Mapped[str | None] = mapped_column(Text)
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("drafts.id"))
    to_number: Mapped[str | None] = mapped_column(String(20))  # our number they texted
    status: Mapped[str] = mapped_column(String(12), default="pending")  # paid
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]


class PaymentEvent(Base):
    """A payment provider's event, kept so a replayed webhook changes nothing."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(12))
    event_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProviderEvent(Base):
    """A delivery provider's event, kept so a repeat changes nothing."""

    __tablename__ = "provider_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reply(Base):
    """A reply from the person in prison to a family member's message."""

    __tablename__ = "replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    inmate_pk: Mapped[int] = mapped_column(ForeignKey("inmates.id"))
    ref: Mapped[str] = mapped_column(String(8), unique=True)
    body: Mapped[str] = mapped_column(Text)
    source_key: Mapped[str] = mapped_column(String(255), unique=True)  # provider event id
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    inmate: Mapped[Inmate] = relationship(lazy="joined")


# --- facility desk and tablet ---------------------------------------------------------


class Staff(Base):
    """A facility staff member who reviews messages at the desk."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffFacility(Base):
    """Which facilities a staff member works for (they see only those)."""

    __tablename__ = "staff_facilities"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    facility_id: Mapped[str] = mapped_column(ForeignKey("facilities.id"), primary_key=True)


class TabletPin(Base):
    """The PIN a person in prison uses on the tablet page (embedded provider only)."""

    __tablename__ = "tablet_pins"

    inmate_pk: Mapped[int] = mapped_column(ForeignKey("inmates.id"), primary_key=True)
    pin_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
