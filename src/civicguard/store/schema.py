"""The database schema (SQLAlchemy Core). Alembic migrations under ``migrations/`` create it.

Times are stored as Unix seconds (UTC) in floating point: comparable and indexable the same way
on SQLite and PostgreSQL; the API turns them into timezone-aware ISO 8601.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Generated row ids: BIGSERIAL on PostgreSQL; on SQLite only an INTEGER PRIMARY KEY is the
#: autoincrementing rowid (a BIGINT one gets no generated value), hence the variant.
SERIAL_ID = BigInteger().with_variant(Integer, "sqlite")

devices = Table(
    "devices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("stream", String(64), nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("district", String(64), nullable=False, default=""),
    Column("label", String(200), nullable=False, default=""),
    # The device's secret, sealed with AES-GCM under a key from the key store.
    Column("secret_sealed", LargeBinary, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

readings = Table(
    "readings",
    metadata,
    Column("id", SERIAL_ID, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("stream", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("ts", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("cell", String(16), nullable=False),
    # The reading's fields after the privacy gateway, as JSON text.
    Column("payload", Text, nullable=False),
    # Keyed digest of the raw reading (ingest.sequence.Fingerprinter): a resend of this seq
    # with the same content is a retransmission, with other content a replay. NULL: stored
    # before fingerprints were.
    Column("fingerprint", BigInteger, nullable=True),
    UniqueConstraint("device_id", "seq"),
    # Two indexes only: every extra one costs a third of the write rate (ADR 0004). Place
    # queries narrow by stream and time first; retention sweeps go stream by stream.
    Index(None, "stream", "ts"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", SERIAL_ID, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False, index=True),
    Column("transport", String(16), nullable=False),
    Column("reason", String(32), nullable=False, index=True),
    Column("detail", Text, nullable=False),
    Column("device_id", String(64), nullable=True),
    Column("stream", String(64), nullable=True),
    Column("seq", BigInteger, nullable=True),
    Column("idx", Integer, nullable=True),
    Column("payload", Text, nullable=False, default=""),
    # The refusal's identity from ingest: one the event log delivers again is stored once.
    # Dead letters stored before it was kept have none (NULLs never conflict).
    Column("event_id", String(32), nullable=True),
    Index("uq_dead_letters_event_id", "event_id", unique=True),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("opened_at", Float, nullable=False, index=True),
    Column("updated_at", Float, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("severity", String(16), nullable=False),
    Column("title", String(200), nullable=False),
    Column("cell", String(16), nullable=False),
    Column("district", String(64), nullable=False, default=""),
    Column("alert_count", Integer, nullable=False, default=0),
    Column("acknowledged_by", String(64), nullable=True),
    Column("acknowledged_at", Float, nullable=True),
    Column("resolved_by", String(64), nullable=True),
    Column("resolved_at", Float, nullable=True),
    Column("note", Text, nullable=False, default=""),
    # What the incident's alerts share: an H3 area, a device or a detector and door (migration
    # 0008; incidents stored before it have "" and are keyed by the area of their cell).
    Column("group_key", Text, nullable=False, server_default=""),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", Float, nullable=False, index=True),
    Column("ts", Float, nullable=False),
    Column("detector", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("title", String(200), nullable=False),
    Column("stream", String(64), nullable=False),
    Column("device_id", String(64), nullable=True, index=True),
    Column("cell", String(16), nullable=False),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("evidence", JSON, nullable=False),
    Column("incident_id", String(36), ForeignKey("incidents.id"), nullable=True, index=True),
    # The alert in plain language (migration 0007; alerts stored before it have "").
    Column("explanation", Text, nullable=False, server_default=""),
)

users = Table(
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

# --- Key lifecycle and retention (issue 3; migration 0003) ---

#: When each pseudonym key was created and destroyed, and why: names only, never key bytes.
#: A key has at most one event of each kind (a destroyed key is never created again).
key_events = Table(
    "key_events",
    metadata,
    Column("id", SERIAL_ID, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("event", String(16), nullable=False),
    Column("at", Float, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    UniqueConstraint("name", "event"),
)

#: What each retention sweep removed, per target (readings, alerts, keys...).
retention_runs = Table(
    "retention_runs",
    metadata,
    Column("id", SERIAL_ID, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("target", String(64), nullable=False),
    Column("removed", Integer, nullable=False),
)

# --- Consent (issue 3; migration 0004) ---

#: Consent of one subject (a keyed handle, never the raw id) for one purpose of one stream;
#: ``withdrawn_at`` is set by a withdrawal. The consent gate of ingest reads this table.
consents = Table(
    "consents",
    metadata,
    Column("id", SERIAL_ID, primary_key=True, autoincrement=True),
    Column("subject", String(40), nullable=False),
    Column("stream", String(64), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("granted_at", Float, nullable=False),
    Column("withdrawn_at", Float, nullable=True),
    Column("grant_receipt", String(36), nullable=False),
    Column("withdraw_receipt", String(36), nullable=True),
    Index(None, "subject", "stream"),
)

#: Every consent receipt issued; the signed record copy is sealed under the subject's key.
consent_receipts = Table(
    "consent_receipts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("subject", String(40), nullable=False, index=True),
    Column("stream", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("document_sealed", LargeBinary, nullable=False),
)

# --- Subjects: records sealed per subject, subject requests (issue 3; migration 0005) ---

#: Subjects that have (or had) a key of their own; ``erased_at`` records a crypto-shredding.
subjects = Table(
    "subjects",
    metadata,
    Column("handle", String(40), primary_key=True),
    Column("first_seen", Float, nullable=False),
    Column("erased_at", Float, nullable=True),
)

#: Export and erasure requests, so that the DPO sees what is pending.
subject_requests = Table(
    "subject_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("subject", String(40), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("requested_at", Float, nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("done_at", Float, nullable=True),
    Column("done_by", String(64), nullable=True),
    # The citizen id, sealed under the subject's key, so that the DPO can carry the request
    # out; erasure shreds it with the rest.
    Column("citizen_sealed", LargeBinary, nullable=True),
)

# --- Citizen reports (issue 3; migration 0006) ---

#: Problems residents report. ``text`` is scrubbed of personal data before it is stored; a
#: report filed by an identified citizen keeps it sealed under their key in ``text_sealed``.
citizen_reports = Table(
    "citizen_reports",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("received_at", Float, nullable=False, index=True),
    Column("category", String(32), nullable=False),
    Column("cell", String(16), nullable=True),
    Column("subject", String(40), nullable=True, index=True),
    Column("text", Text, nullable=False, default=""),
    Column("text_sealed", LargeBinary, nullable=True),
)

# --- Alert marks (issue 4; migration 0007) ---

# An operator's verdict on an alert (true or false alarm), kept for tuning. Append-only: the
# latest mark of an alert counts. Detector and kind are copied so that the tuning figures
# outlive the alert itself (alerts are swept by retention; no foreign key holds them back).
alert_marks = Table(
    "alert_marks",
    metadata,
    Column("id", SERIAL_ID, primary_key=True, autoincrement=True),
    Column("alert_id", String(36), nullable=False, index=True),
    Column("detector", String(64), nullable=False, index=True),
    Column("kind", String(64), nullable=False),
    Column("verdict", String(8), nullable=False),
    Column("marked_by", String(64), nullable=False),
    Column("marked_at", Float, nullable=False),
    # Free text from staff, after PII scrubbing.
    Column("note", Text, nullable=False, default=""),
)
