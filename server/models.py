"""Database tables (SQLAlchemy 2.0 typed models): devices and their answers to settings,
raw events, derived sessions, drills, nudges, daily rollups and daily insight figures,
dashboard users, the desks linked to each user, each user's own daily goal and the audit
log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    cast,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sitwatch.calendar import as_utc
from sitwatch.drill import CIRCUIT

# Named constraints, so later migrations can alter them (SQLite batch mode needs names).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A UTC timestamp that reads back timezone-aware on every database (SQLite drops the
    zone, PostgreSQL keeps it); naive values written are taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else as_utc(value)


# Indexes made on PostgreSQL only (Index.ddl_if); the migrations and the drift check know.
POSTGRESQL_ONLY_INDEXES = frozenset({"ix_events_type_ts"})


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # protocol device id
    name: Mapped[str] = mapped_column(String(100), default="")
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    boot_id: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(40))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Last settings published to the device's retained config topic (a TrackerSettings dump).
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The latest stored seated/stood_up event's type and time, kept by ingest (server/seat.py).
    seat_type: Mapped[str | None] = mapped_column(String(32))
    seat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConfigResult(Base):
    """Each desk's latest answer on config/result: whether it took the settings it was sent.
    No foreign key: a desk's retained answer may arrive before its first status or event."""

    __tablename__ = "config_results"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    accepted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text)  # at most protocol.MAX_REASON_CHARS
    # protocol.config_id of the settings answered; None if the desk could not say.
    config_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Event(Base):
    """Every valid event as received; ``event_id`` makes ingest idempotent."""

    __tablename__ = "events"
    # Per desk by time; and fleet-wide by kind and time (pauses in force, a day's prompts),
    # which PostgreSQL would otherwise answer by reading the whole table.
    __table_args__ = (
        Index("ix_events_device_ts", "device_id", "ts"),
        # PostgreSQL only: SQLite keeps no statistics unless told to, and without them
        # preferred this index to (device_id, ts) for one desk's events after a time,
        # scanning every desk's (the fleet's Insights page: 1.6 -> 18 s).
        Index("ix_events_type_ts", "type", "ts").ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    boot_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    mono: Mapped[float] = mapped_column(Float)
    clock_synced: Mapped[bool] = mapped_column(Boolean)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SittingSession(Base):
    """One stretch on the seat, from a stood_up event (which carries its length)."""

    __tablename__ = "sitting_sessions"
    __table_args__ = (
        Index("ix_sessions_device_start", "device_id", "started_at"),
        Index("ix_sessions_start", "started_at"),  # fleet-wide: a day's sessions
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_s: Mapped[float] = mapped_column(Float)


class Drill(Base):
    __tablename__ = "drills"
    __table_args__ = (
        Index("ix_drills_device_ts", "device_id", "ts"),
        Index("ix_drills_ts", "ts"),  # fleet-wide: a day's drills
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    guided: Mapped[bool] = mapped_column(Boolean)
    # The seat was empty for the circuit (protocol.drill_counts): only such a drill counts
    # in the rollups, streaks and funnel; the others are shown as not counted.
    verified: Mapped[bool] = mapped_column(Boolean, server_default=true())


class DailyRollup(Base):
    """Per device and local day: the figures the dashboard charts, kept current by ingest so
    a year of stats reads 365 rows instead of thousands of events."""

    __tablename__ = "daily_rollups"
    # The primary key leads with the device; fleet-wide days (today, a week) need their own
    # index. It carries ``drills`` and ``longest_s`` so the fleet's records (drill streaks,
    # the longest session) are read from it alone (SQLite walks it for GROUP BY day;
    # fetching each row's drills made that 10x slower).
    __table_args__ = (Index("ix_rollups_day", "day", "drills", "longest_s"),)

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    seated_s: Mapped[float] = mapped_column(Float, default=0.0)
    sessions: Mapped[int] = mapped_column(Integer, default=0)
    longest_s: Mapped[float] = mapped_column(Float, default=0.0)
    breaks: Mapped[int] = mapped_column(Integer, default=0)
    prompts: Mapped[int] = mapped_column(Integer, default=0)
    prompts_answered: Mapped[int] = mapped_column(Integer, default=0)
    # Of prompts_answered, those answered by a drill (prompt_ack how="drill": a verified one).
    prompts_answered_by_drill: Mapped[int] = mapped_column(Integer, default=0)
    drills: Mapped[int] = mapped_column(Integer, default=0)  # verified drills only


class FleetDay(Base):
    """Per local day, every desk together: the drills that count (summed over the desks) and
    the longest session (of any desk), kept by ingest with the rollups (server/fleet_days.py)
    so the fleet's records (drill streaks, the longest session) read a row per day, not one
    per desk and day (200 ms for 10,000 desks x 1 year on PostgreSQL)."""

    __tablename__ = "fleet_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    drills: Mapped[int] = mapped_column(Integer, default=0)
    longest_s: Mapped[float] = mapped_column(Float, default=0.0)


# The figures of a rollup row, named once, by the columns above: ingest adds each new
# event's share to them and the stats add them up over devices, all but ``longest_s``, of
# which they take the longest.
ROLLUP_FIGURES: tuple[str, ...] = tuple(
    column.key for column in DailyRollup.__table__.columns if not column.primary_key
)
ROLLUP_SUMS = tuple(name for name in ROLLUP_FIGURES if name != "longest_s")


_EMPTY_FIGURES: dict[str, float | int] = {
    name: DailyRollup.__table__.columns[name].type.python_type() for name in ROLLUP_FIGURES
}


def empty_figures() -> dict[str, float | int]:
    """Every rollup figure at zero, of its column's type (0.0 for seconds, 0 for counts)."""
    return dict(_EMPTY_FIGURES)


class Nudge(Base):
    """One prompt cycle of the Insights' nudge funnel (server/queries/insights.py): a desk's
    first audible prompt after its previous one was answered, and how many seconds later
    its user first stood up and first did a drill that counts, before the desk's next nudge
    (None: not before it). Derived at ingest from the events (``derive.derive_nudges``)."""

    __tablename__ = "nudges"
    __table_args__ = (Index("ix_nudges_device_start", "device_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)  # its first prompt
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    boot_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    day: Mapped[date] = mapped_column(Date)  # the local day of started_at
    stand_s: Mapped[float | None] = mapped_column(Float)
    drill_s: Mapped[float | None] = mapped_column(Float)


def stand_second(stand_s: Any) -> ColumnElement[int]:
    """A nudge's time to stand as a whole second (SQL's CAST: PostgreSQL rounds, SQLite
    truncates; either keeps the order of the times, which is all the funnel's medians need
    of it: queries/insights.py). NULL stays NULL."""
    return cast(stand_s, Integer)


# The fleet's funnel reads only this index: the nudges per day and whole second to stand in
# order (the counts), and the times of a few seconds (the medians). The expression is the
# one the queries group by, so the database matches them.
Index(
    "ix_nudges_day",
    Nudge.day,
    stand_second(Nudge.stand_s),
    Nudge.stand_s,
    Nudge.drill_s,
)


# Sitting bouts by length, [low, high) in minutes; the last one is open-ended.
BOUT_EDGES_MIN: tuple[tuple[int, int | None], ...] = (
    (0, 15),
    (15, 30),
    (30, 60),
    (60, 90),
    (90, None),
)
BOUT_COLUMNS = tuple(
    f"bouts_{lo}_{hi}" if hi is not None else f"bouts_{lo}_up" for lo, hi in BOUT_EDGES_MIN
)
HOUR_COLUMNS = tuple(f"seated_h{hour:02d}" for hour in range(24))
OTHER_STEP = "other"
EXERCISE_KEYS = (*(step.key for step in CIRCUIT), OTHER_STEP)
STEP_COLUMNS = tuple(f"steps_{key}" for key in EXERCISE_KEYS)

daily_insights = Table(
    "daily_insights",
    Base.metadata,
    Column("device_id", String(64), ForeignKey("devices.id"), primary_key=True),
    Column("day", Date, primary_key=True),
    *(Column(name, Integer, nullable=False, default=0) for name in BOUT_COLUMNS),
    *(Column(name, Float, nullable=False, default=0.0) for name in HOUR_COLUMNS),
    *(Column(name, Integer, nullable=False, default=0) for name in STEP_COLUMNS),
    Index("ix_daily_insights_day", "day"),
)


class DailyInsight(Base):
    """Per device and local day, what the Insights page sums over a range besides the
    rollups: sitting bouts per length bucket (sessions counted to the day they started),
    seated seconds per local clock hour (each session cut at hour boundaries and DST
    changes, each piece counted to the day its hour is in) and drill steps the guided
    circuit reached, per step (not those of a circuit done on the chair). Recounted at
    ingest from sessions and events (``derive.recount_insights``)."""

    __table__ = daily_insights


INSIGHT_FIGURES = (*BOUT_COLUMNS, *HOUR_COLUMNS, *STEP_COLUMNS)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    # Part of every login session's id: raising it (logout, new password, disable) ends every
    # session of this user, on every browser, even a copied cookie.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Roles and privacy (docs/privacy.md): an admin manages desks and users; a member sees
    # and changes only the desks linked to them (DeskLink).
    role: Mapped[str] = mapped_column(String(16), default="member")  # one of ROLES
    # The member lets admins see their desks' own figures in office privacy mode.
    shares_with_admins: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEntry(Base):
    """Who did what, when and from which address: logins (and failed ones, which the login
    throttle counts), logouts, desk changes, user changes from the CLI. Names, not foreign
    keys: an entry outlives the user or desk it names."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_actor_at", "actor", "at"),
        Index("ix_audit_log_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The dashboard user (for a failed login, the name typed), or "cli:<system user>".
    actor: Mapped[str] = mapped_column(String(100))
    # The client's address as the web server saw it (behind a proxy: the proxy's
    # X-Forwarded-For, once trusted); None from the CLI.
    address: Mapped[str | None] = mapped_column(String(45))
    action: Mapped[str] = mapped_column(String(40))  # one of sitwatch.server.audit's names
    target: Mapped[str | None] = mapped_column(String(100))  # a device id or a username
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


ADMIN = "admin"
MEMBER = "member"
ROLES = (MEMBER, ADMIN)


class DeskLink(Base):
    """A desk that is a user's own. No foreign key to devices: a desk may be linked before it
    first reports (a home install links its one desk at set-up)."""

    __tablename__ = "desk_links"
    __table_args__ = (Index("ix_desk_links_device", "device_id"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class PersonalGoal(Base):
    """The daily goal a user chose for themselves (the personal page, server/web/personal.py):
    no sitting stretch longer than ``max_stretch_min`` minutes, and a stand-up in at least
    ``break_hours`` different hours of the day. No row: the defaults of
    ``server.queries.progress.Goal``."""

    __tablename__ = "personal_goals"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    max_stretch_min: Mapped[int] = mapped_column(Integer)
    break_hours: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
