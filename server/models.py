"""Database tables (SQLAlchemy 2.0 typed models): devices, raw events, derived sessions,
drills, daily rollups and dashboard users."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # protocol device id
    name: Mapped[str] = mapped_column(String(100), default="")
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    boot_id: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(40))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Last settings published to the device's retained config topic (a TrackerSettings dump).
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Event(Base):
    """Every valid event as received; ``event_id`` makes ingest idempotent."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_device_ts", "device_id", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    boot_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    mono: Mapped[float] = mapped_column(Float)
    clock_synced: Mapped[bool] = mapped_column(Boolean)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SittingSession(Base):
    """One stretch on the seat, from a stood_up event (which carries its length)."""

    __tablename__ = "sitting_sessions"
    __table_args__ = (Index("ix_sessions_device_start", "device_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float] = mapped_column(Float)


class Drill(Base):
    __tablename__ = "drills"
    __table_args__ = (Index("ix_drills_device_ts", "device_id", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    guided: Mapped[bool] = mapped_column(Boolean)


class DailyRollup(Base):
    """Per device and local day: the figures the dashboard charts, kept current by ingest so
    a year of stats reads 365 rows instead of thousands of events."""

    __tablename__ = "daily_rollups"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    seated_s: Mapped[float] = mapped_column(Float, default=0.0)
    sessions: Mapped[int] = mapped_column(Integer, default=0)
    longest_s: Mapped[float] = mapped_column(Float, default=0.0)
    breaks: Mapped[int] = mapped_column(Integer, default=0)
    prompts: Mapped[int] = mapped_column(Integer, default=0)
    prompts_answered: Mapped[int] = mapped_column(Integer, default=0)
    drills: Mapped[int] = mapped_column(Integer, default=0)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
