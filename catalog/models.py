"""The catalog's tables (SQLAlchemy 2.0 typed models).

The catalog is an index over what storage holds; storage stays
self-describing, so these tables can be rebuilt from it. Times are aware
UTC datetimes (``UTCDateTime``); JSON values that are hashed or signed are
kept as text in their canonical form so their bytes never change.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .db import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHA256 = String(64)
SM3 = String(64)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


# --- people and equipment -------------------------------------------------


class Station(Base):
    """A docking/collection station (执法数据采集站)."""

    __tablename__ = "stations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    unit: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Officer(Base):
    """An enforcement officer (执法人员), by enforcement-certificate number."""

    __tablename__ = "officers"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(32))


class Device(Base):
    """A recorder (执法记录仪), by serial number."""

    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(32))


class DeviceAssignment(Base):
    """A device in an officer's hands from ``valid_from`` until ``valid_to`` (open if null)."""

    __tablename__ = "device_assignments"
    __table_args__ = (Index("ix_device_assignments_device_from", "device_id", "valid_from"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id"))
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]


# --- recordings -----------------------------------------------------------


class Recording(Base):
    """One original file (video, audio or photo) as archived."""

    __tablename__ = "recordings"
    __table_args__ = (
        CheckConstraint("kind IN ('video', 'audio', 'photo')", name="kind"),
        CheckConstraint("status IN ('archived', 'pending_deletion', 'purged')", name="status"),
        Index("ix_recordings_start_time", "start_time"),
        Index("ix_recordings_officer_start", "officer_id", "start_time"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    archive_no: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(SHA256, index=True)
    sm3: Mapped[str | None] = mapped_column(SM3)
    size: Mapped[int] = mapped_column(BigInteger)
    original_name: Mapped[str] = mapped_column(String(1024))
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officers.id"))
    start_time: Mapped[datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    ingested_at: Mapped[datetime]
    storage_key: Mapped[str] = mapped_column(String(1024))
    storage_version: Mapped[str | None] = mapped_column(String(256))
    manifest_key: Mapped[str | None] = mapped_column(String(1024))
    content_type: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(20), default="archived")
    damaged: Mapped[bool] = mapped_column(Boolean, default=False)
    damage_reason: Mapped[str | None] = mapped_column(Text)
    important: Mapped[bool] = mapped_column(Boolean, default=False)
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Digest and size of the bytes as stored: the ciphertext when encrypted.
    stored_sha256: Mapped[str | None] = mapped_column(SHA256)
    stored_size: Mapped[int | None] = mapped_column(BigInteger)
    # flags such as obstruction / emergency, metadata (codecs, GPS...) and the
    # source of every metadata value, as JSON text.
    flags: Mapped[str] = mapped_column(Text, default="{}")
    media_info: Mapped[str] = mapped_column(Text, default="{}")
    sources: Mapped[str] = mapped_column(Text, default="{}")
    retain_until: Mapped[datetime | None]
    pending_since: Mapped[datetime | None]
    due_at: Mapped[datetime | None]  # as the retention run last computed it; None: kept
    last_verified_at: Mapped[datetime | None]

    derivatives: Mapped[list[Derivative]] = relationship(back_populates="recording")


class Derivative(Base):
    """A proxy, poster, contact sheet or waveform made from a recording."""

    __tablename__ = "derivatives"
    __table_args__ = (
        CheckConstraint("status IN ('ok', 'pending', 'failed')", name="status"),
        UniqueConstraint("recording_id", "kind", "sha256", name="uq_derivatives_recording_kind_sha"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    sha256: Mapped[str | None] = mapped_column(SHA256)
    size: Mapped[int | None] = mapped_column(BigInteger)
    storage_key: Mapped[str | None] = mapped_column(String(1024))
    storage_version: Mapped[str | None] = mapped_column(String(256))
    content_type: Mapped[str | None] = mapped_column(String(128))
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime]
    error: Mapped[str | None] = mapped_column(Text)
    last_verified_at: Mapped[datetime | None]

    recording: Mapped[Recording] = relationship(back_populates="derivatives")


# --- cases and written records --------------------------------------------


class Case(Base):
    """An enforcement case (案件): the bureau's number verbatim and an ASCII key."""

    __tablename__ = "cases"
    __table_args__ = (CheckConstraint("status IN ('open', 'closed')", name="status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_key: Mapped[str] = mapped_column(String(64), unique=True)
    number: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str | None] = mapped_column(String(500))
    case_type: Mapped[str | None] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(32))
    major: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(10), default="open")
    opened_on: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))


class Document(Base):
    """A written record (执法文书) of a case, stored as a file with its digests."""

    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    doc_type: Mapped[str] = mapped_column(String(100))
    doc_number: Mapped[str | None] = mapped_column(String(200))
    doc_date: Mapped[datetime | None]
    officer: Mapped[str | None] = mapped_column(String(64))  # who made the record (certificate no.)
    sha256: Mapped[str] = mapped_column(SHA256, index=True)
    sm3: Mapped[str | None] = mapped_column(SM3)
    size: Mapped[int] = mapped_column(BigInteger)
    original_name: Mapped[str] = mapped_column(String(1024))
    content_type: Mapped[str | None] = mapped_column(String(128))
    storage_key: Mapped[str] = mapped_column(String(1024))
    storage_version: Mapped[str | None] = mapped_column(String(256))
    manifest_key: Mapped[str | None] = mapped_column(String(1024))
    protected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    stored_sha256: Mapped[str | None] = mapped_column(SHA256)
    stored_size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200), server_default="")
    last_verified_at: Mapped[datetime | None]


class DocumentPage(Base):
    """One page of a written record as an image (PNG made by poppler's ``pdftoppm``), a
    derivative kept in storage like a recording's, encrypted when the document is."""

    __tablename__ = "document_pages"
    __table_args__ = (UniqueConstraint("document_id", "page", name="uq_document_pages_document_page"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    page: Mapped[int] = mapped_column(Integer)  # from 1
    pages: Mapped[int] = mapped_column(Integer)  # how many pages were made for the document
    sha256: Mapped[str] = mapped_column(SHA256)
    size: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(1024))
    storage_version: Mapped[str | None] = mapped_column(String(256))
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime]
    last_verified_at: Mapped[datetime | None]


class KeyWrap(Base):
    """One data key wrapped under one KEK: the wrap object's pinned version in storage and a
    copy of its bytes (``archive.encryption`` documents them). ``superseded_at`` is set once
    the object has a wrap under a newer KEK; a superseded wrap may be deleted (row and
    object) when its lock ends, and then a leaked old KEK no longer opens the object
    through it."""

    __tablename__ = "key_wraps"
    __table_args__ = (UniqueConstraint("storage_key", "binding", name="uq_key_wraps_storage_key_binding"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    object_key: Mapped[str] = mapped_column(String(1024), index=True)
    kek_id: Mapped[str] = mapped_column(String(16), index=True)
    binding: Mapped[str] = mapped_column(String(32))  # hex of the wrap's binding to its object
    storage_key: Mapped[str] = mapped_column(String(1100))
    storage_version: Mapped[str | None] = mapped_column(String(256))
    wrap: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    retain_until: Mapped[datetime | None]
    superseded_at: Mapped[datetime | None]


class CaseItem(Base):
    """A record's membership of a case; carries the shared item number (共同编号)."""

    __tablename__ = "case_items"
    __table_args__ = (
        CheckConstraint("kind IN ('document', 'video', 'audio', 'photo')", name="kind"),
        CheckConstraint("(recording_id IS NULL) <> (document_id IS NULL)", name="one_target"),
        UniqueConstraint("case_id", "seq", name="uq_case_items_case_seq"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    item_no: Mapped[str] = mapped_column(String(96), unique=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"), index=True)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"), index=True)
    linked_at: Mapped[datetime]
    linked_by: Mapped[str] = mapped_column(String(200))
    unlinked_at: Mapped[datetime | None]
    unlinked_by: Mapped[str | None] = mapped_column(String(200))
    unlink_reason: Mapped[str | None] = mapped_column(Text)


class Hold(Base):
    """A legal hold on an item, a recording or a whole case."""

    __tablename__ = "holds"
    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), index=True)
    reason: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime]
    set_by: Mapped[str] = mapped_column(String(200))
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(200))
    release_reason: Mapped[str | None] = mapped_column(Text)


class Tombstone(Base):
    """What remains of a purged item: numbers, digests, reason, the deletion event."""

    __tablename__ = "tombstones"
    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(96), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    numbers: Mapped[str] = mapped_column(Text, default="[]")  # every number it carried, JSON
    sha256: Mapped[str] = mapped_column(SHA256)
    sm3: Mapped[str | None] = mapped_column(SM3)
    size: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime | None]
    purged_at: Mapped[datetime]
    custody_seq: Mapped[int | None] = mapped_column(BigInteger)
    storage_key: Mapped[str | None] = mapped_column(String(1024))


# --- custody chain --------------------------------------------------------


class CustodyEventRow(Base):
    """One append-only, hash-chained custody event (see ``catalog.chain``)."""

    __tablename__ = "custody_events"
    __table_args__ = (Index("ix_custody_events_subject_seq", "subject", "seq"),)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(1024))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly as hashed
    prev_hash: Mapped[str] = mapped_column(SHA256)
    hash: Mapped[str] = mapped_column(SHA256, unique=True)
    v: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    body: Mapped[str | None] = mapped_column(Text)  # v2: the exact JCS body that was hashed
    body_hash: Mapped[str | None] = mapped_column(SHA256)


class CustodyHead(Base):
    """The chain's head, one row; appenders lock it so the chain never forks."""

    __tablename__ = "custody_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(SHA256)


class CheckpointRow(Base):
    """A signed statement of the chain head (see ``catalog.checkpoint``)."""

    __tablename__ = "checkpoints"
    n: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    head: Mapped[str] = mapped_column(SHA256)
    time: Mapped[datetime]
    key_id: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    storage_key: Mapped[str | None] = mapped_column(String(1024))
    v: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    statement: Mapped[str | None] = mapped_column(Text)  # v2: the exact signed bytes
    key: Mapped[str | None] = mapped_column(SHA256)  # v2: the signer's full fingerprint
    # Trusted time (RFC 3161): the TSA's token over ``statement``, and whether storage has it.
    tsa_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    tsa_stored: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class KeyStatement(Base):
    """A key-change or retirement statement of the signing keys' history (``catalog.keyhistory``)."""

    __tablename__ = "key_statements"
    name: Mapped[str] = mapped_column(String(160), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "change" or "retirement"
    statement: Mapped[str] = mapped_column(Text)  # the exact signed bytes
    signatures: Mapped[str] = mapped_column(Text)  # JSON: base64 raw signatures by role
    stored: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime]


# --- pipeline bookkeeping -------------------------------------------------


class IngestJob(Base):
    """A file seen on a station, tracked through the ingest state machine.

    One row per version of a station file: its path with ``(dev, ino, size, mtime_ns,
    ctime_ns)`` as read (a rewrite in place changes ``ctime_ns`` even when size and mtime are
    put back). ``moved_to`` and ``moved_ctime_ns`` say where in ``.archived`` the station copy
    went and its ctime after the move, so pruning deletes only that very file unchanged.
    ``copy_error`` says why the station copy could not be moved or deleted (reported once).
    Inode numbers above 2**63 are kept as their two's complement (``catalog.jobs``).
    """

    __tablename__ = "ingest_jobs"
    __table_args__ = (
        UniqueConstraint(
            "station_id", "path", "size", "mtime_ns", "dev", "ino", "ctime_ns", name="uq_ingest_jobs_file"
        ),
        Index("ix_ingest_jobs_state", "state"),
        Index("ix_ingest_jobs_moved_to", "station_id", "moved_to"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[str] = mapped_column(String(32), index=True)
    path: Mapped[str] = mapped_column(String(4096))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str | None] = mapped_column(SHA256)
    archive_no: Mapped[str | None] = mapped_column(String(64), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_try: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(Text)  # the reason of a quarantine or failure
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    dev: Mapped[int | None] = mapped_column(BigInteger)
    ino: Mapped[int | None] = mapped_column(BigInteger)
    ctime_ns: Mapped[int | None] = mapped_column(BigInteger)
    moved_to: Mapped[str | None] = mapped_column(String(4096))
    moved_ctime_ns: Mapped[int | None] = mapped_column(BigInteger)
    copy_error: Mapped[str | None] = mapped_column(Text)


class CatalogKey(Base):
    """Which key (by id) this catalog's records depend on, per purpose.

    A key file that goes missing or is replaced is then an error naming the
    key to restore, never a silently generated new key.
    """

    __tablename__ = "catalog_keys"
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class OutboxRecord(Base):
    """A storage record (case event, tombstone) committed with the catalog change it
    describes and copied to storage right after; a crash in between leaves it here,
    and the next run writes it."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(1024), unique=True)
    body: Mapped[str] = mapped_column(Text)  # canonical JSON
    lock_until: Mapped[datetime | None]
    created_at: Mapped[datetime]


class User(Base):
    """An account of the auditors' web pages."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('auditor', 'legal', 'admin')", name="role"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    protected_access: Mapped[bool] = mapped_column(Boolean, default=False)  # 国家秘密、商业秘密、个人隐私
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]


class WebSession(Base):
    """A signed-in session of the web pages, so it can be ended on the server: the cookie
    names it, and a session that is ended, idle too long or too old no longer admits."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class RunLock(Base):
    """A lease on a job that must not run twice at once (the retention run)."""

    __tablename__ = "run_locks"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]


class DeriveJob(Base):
    """A derivative to be made by a worker (``evidence derive work``), claimed under a lease.

    ``state``: ``queued`` → ``running`` (claimed: ``owner`` renews ``lease_until`` while it
    works) → ``done``; back to ``queued`` after a failure (``not_before`` delays the retry),
    ``failed`` after :data:`catalog.derive_jobs.MAX_FAILURES`. A running job whose lease
    lapsed (its worker died) is claimed again by the next worker and counts as a failure.
    """

    __tablename__ = "derive_jobs"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state"),
        UniqueConstraint("recording_id", "kind", name="uq_derive_jobs_recording_kind"),
        Index("ix_derive_jobs_state", "state", "kind"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(10), default="queued")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    not_before: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DigestReservation(Base):
    """Content being archived right now, by digest: one station at a time stores it.

    The owner renews ``expires_at`` while it works and deletes the row in the
    transaction that commits the recording; a killed owner's row lapses (see
    ``catalog.reservations``).
    """

    __tablename__ = "digest_reservations"
    sha256: Mapped[str] = mapped_column(SHA256, primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))  # unique per reservation
    station: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(200))  # host, boot and pid namespace of the owner
    process: Mapped[str] = mapped_column(String(64))  # pid and start time on that host
    taken_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class NumberSequence(Base):
    """The last number issued in a scope; only ever goes up."""

    __tablename__ = "number_sequences"
    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger)
