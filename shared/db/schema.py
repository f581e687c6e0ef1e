"""The index schema (SQLAlchemy Core). Migrations in ``migrations/versions`` create it.

One schema for PostgreSQL and SQLite: the instance header is JSONB on PostgreSQL and JSON text
on SQLite. Times are stored in UTC and come back with their zone on both (:class:`UtcMoment`).
A test checks that this module and the migrations agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Header = sa.JSON().with_variant(JSONB(), "postgresql")


class UtcMoment(sa.TypeDecorator[datetime]):
    """A moment, stored in UTC and always given back with its zone: SQLite keeps none, and a
    moment without its zone cannot be compared with one that has it."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a moment without its zone: {value.isoformat()}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Moment = UtcMoment()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("home", sa.Text, nullable=True),
    sa.Column("owner_uid", sa.Integer, nullable=True),
    sa.Column("owner_gid", sa.Integer, nullable=True),
    sa.Column("created_at", Moment, nullable=False),
)

physician_names = sa.Table(
    "physician_names",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "account_id",
        sa.Integer,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("match_key", sa.String(256), nullable=False, index=True),
    sa.UniqueConstraint("account_id", "match_key"),
)

patients = sa.Table(
    "patients",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # The key: a digest of the whole Patient ID and issuer (migration 0004), since a key cut
    # to a column's width would tell two patients apart from what the lookup asks for.
    sa.Column("identity", sa.String(64), nullable=False, unique=True),
    sa.Column("patient_id", sa.Text, nullable=False, index=True),
    sa.Column("issuer", sa.Text, nullable=False, server_default=""),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("birth_date", sa.String(8), nullable=True),
    sa.Column("sex", sa.String(16), nullable=True),
    # Name and ID folded as physician names are (shared.folding), for `studies --patient`.
    sa.Column("search_text", sa.Text, nullable=True),
    sa.Column("updated_at", Moment, nullable=False),
    # Received time of the instance whose values the row holds: a re-sent, corrected instance
    # overwrites them when it is at least as recent (migration 0004).
    sa.Column("attributes_from", Moment, nullable=True),
    # C-FIND by the start of a name: a prefix LIKE (migration 0007).
    sa.Index(
        "ix_patients_search_text", "search_text", postgresql_ops={"search_text": "text_pattern_ops"}
    ),
)

studies = sa.Table(
    "studies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("study_instance_uid", sa.String(64), nullable=False, unique=True),
    sa.Column("patient_fk", sa.Integer, sa.ForeignKey("patients.id"), nullable=True, index=True),
    sa.Column("study_date", sa.String(8), nullable=True, index=True),
    sa.Column("study_time", sa.String(16), nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("accession_number", sa.String(64), nullable=True, index=True),
    sa.Column("requesting_physician", sa.Text, nullable=True),
    sa.Column("referring_physician", sa.Text, nullable=True),
    sa.Column("institution", sa.Text, nullable=True),
    sa.Column("station", sa.Text, nullable=True),
    sa.Column("modalities", sa.Text, nullable=True),
    sa.Column("account", sa.String(128), nullable=True, index=True),
    sa.Column("study_folder", sa.Text, nullable=True),
    sa.Column("instance_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("series_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_received_at", Moment, nullable=True),
    sa.Column("last_received_at", Moment, nullable=True, index=True),
    # Study-level attributes on which the study's instances disagreed: {attribute: [values
    # offered besides the kept one]} (see docs/decisions.md, Indexer).
    sa.Column("conflicts", Header, nullable=True),
    # The study monitor's state (migration 0003): the last_received_at whose quiet period was
    # announced and when, and the last_received_at the scan sheet on disk was made from.
    sa.Column("announced_for", Moment, nullable=True),
    sa.Column("announced_at", Moment, nullable=True),
    sa.Column("sheet_written_for", Moment, nullable=True),
    sa.Column("sheet_written_at", Moment, nullable=True),
    sa.Column("attributes_from", Moment, nullable=True),
    # `store-server studies --account A`: one account's studies, newest first.
    sa.Index(None, "account", "last_received_at"),
)

series = sa.Table(
    "series",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("series_instance_uid", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "study_fk",
        sa.Integer,
        sa.ForeignKey("studies.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("number", sa.Integer, nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("modality", sa.String(16), nullable=True),
    sa.Column("protocol", sa.Text, nullable=True),
    sa.Column("body_part", sa.String(64), nullable=True),
    sa.Column("repetition_time", sa.Float, nullable=True),
    sa.Column("echo_time", sa.Float, nullable=True),
    sa.Column("inversion_time", sa.Float, nullable=True),
    sa.Column("flip_angle", sa.Float, nullable=True),
    sa.Column("slice_thickness", sa.Float, nullable=True),
    sa.Column("spacing_between_slices", sa.Float, nullable=True),
    sa.Column("pixel_spacing", sa.String(64), nullable=True),
    sa.Column("rows", sa.Integer, nullable=True),
    sa.Column("columns", sa.Integer, nullable=True),
    sa.Column("field_strength", sa.Float, nullable=True),
    sa.Column("sequence_name", sa.Text, nullable=True),
    sa.Column("instance_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attributes_from", Moment, nullable=True),
)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sop_instance_uid", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "series_fk",
        sa.Integer,
        sa.ForeignKey("series.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("sop_class_uid", sa.String(64), nullable=False),
    sa.Column("instance_number", sa.Integer, nullable=True),
    sa.Column("echo_number", sa.Integer, nullable=True),
    sa.Column("transfer_syntax_uid", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=True),
    sa.Column("received_at", Moment, nullable=False),
    sa.Column("calling_ae", sa.String(16), nullable=True),
    sa.Column("header", Header, nullable=True),
)

# The router's claims, made before it moves a file: a study's account and folder, a series'
# folder within its study, and each instance's file name. Unique constraints make concurrent
# routers agree. Folder names are unique by their case-folded key (migration 0005), since a
# Windows share of the accounts tree cannot hold two names that differ only in case.
study_bindings = sa.Table(
    "study_bindings",
    metadata,
    sa.Column("study_instance_uid", sa.String(64), primary_key=True),
    sa.Column("account", sa.String(128), nullable=False),
    sa.Column("study_folder", sa.Text, nullable=False),
    sa.Column("folder_key", sa.Text, nullable=False),
    sa.Column("bound_at", Moment, nullable=False),
    sa.UniqueConstraint("account", "study_folder"),
    sa.UniqueConstraint("account", "folder_key"),
)

series_bindings = sa.Table(
    "series_bindings",
    metadata,
    sa.Column("series_instance_uid", sa.String(64), primary_key=True),
    sa.Column("study_instance_uid", sa.String(64), nullable=False),
    sa.Column("series_folder", sa.Text, nullable=False),
    sa.Column("folder_key", sa.Text, nullable=False),
    sa.Column("bound_at", Moment, nullable=False),
    sa.UniqueConstraint("study_instance_uid", "series_folder"),
    sa.UniqueConstraint("study_instance_uid", "folder_key"),
)

# An instance's file name is unique in its series folder, and in no wider scope: two accounts
# may hold studies whose folders are named alike (migration 0005).
placements = sa.Table(
    "placements",
    metadata,
    sa.Column("sop_instance_uid", sa.String(64), primary_key=True),
    sa.Column("study_instance_uid", sa.String(64), nullable=False, index=True),
    sa.Column("series_instance_uid", sa.String(64), nullable=False),
    sa.Column("echo_number", sa.Integer, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("spool_name", sa.Text, nullable=False),
    sa.Column("filed_at", Moment, nullable=False),
    sa.UniqueConstraint("series_instance_uid", "path"),
    sa.Index("ix_placements_series_echo", "series_instance_uid", "echo_number"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", Moment, nullable=False, index=True),
    sa.Column("event", sa.String(32), nullable=False, index=True),
    sa.Column("sop_instance_uid", sa.String(64), nullable=True, index=True),
    sa.Column("study_instance_uid", sa.String(64), nullable=True, index=True),
    sa.Column("service", sa.String(32), nullable=False),
    sa.Column("detail", Header, nullable=True),
)

# Modality Performed Procedure Steps as the receiver reported them (migration 0003). A
# COMPLETED step completes its studies once every instance it references is indexed;
# ``announced_at`` says that was done.
mpps_steps = sa.Table(
    "mpps_steps",
    metadata,
    sa.Column("step_uid", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=True, index=True),
    sa.Column("study_instance_uids", Header, nullable=False),
    sa.Column("referenced_sop_instance_uids", Header, nullable=False),
    sa.Column("calling_ae", sa.String(16), nullable=True),
    sa.Column("created_at", Moment, nullable=False),
    sa.Column("updated_at", Moment, nullable=False),
    sa.Column("announced_at", Moment, nullable=True),
)

# A study being re-filed into another account (migration 0006): written before the first file
# moves and removed once the claims and the index say where it went, so that a re-file that
# was killed on its way is finished by running it again.
study_moves = sa.Table(
    "study_moves",
    metadata,
    sa.Column("study_instance_uid", sa.String(64), primary_key=True),
    sa.Column("from_account", sa.String(128), nullable=False),
    sa.Column("from_folder", sa.Text, nullable=False),
    sa.Column("to_account", sa.String(128), nullable=False),
    sa.Column("to_folder", sa.Text, nullable=False),
    sa.Column("started_at", Moment, nullable=False),
)

# Forwarding (migration 0008): one row per instance a rule sends to its destination. The
# forwarder's consumer writes them ``pending``; its sender claims due ones (``sending``, with
# a lease), and leaves them ``done``, ``pending`` again with a later ``next_attempt_at`` while
# the destination is down, or ``failed`` once the destination has refused the instance
# ``forwarder.max_refusals`` times.
forwards = sa.Table(
    "forwards",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("destination", sa.String(16), nullable=False),
    sa.Column("sop_instance_uid", sa.String(64), nullable=False),
    sa.Column("study_instance_uid", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),  # as filed, relative to the accounts root
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("refusals", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("next_attempt_at", Moment, nullable=False),
    sa.Column("claimed_until", Moment, nullable=True),
    sa.Column("created_at", Moment, nullable=False),
    sa.Column("updated_at", Moment, nullable=False),
    sa.UniqueConstraint("rule", "sop_instance_uid"),
    sa.Index("ix_forwards_state_next_attempt_at", "state", "next_attempt_at"),
)
