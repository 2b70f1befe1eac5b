"""sitwatch benchmarks: ingest against the broker's ceiling, backlog drain, dashboard stats,
and the device agent's cost and delays, side by side on this machine.

    python bench/run.py [--quick] [--out bench/results/latest.json] [--only ingest,stats,device]

Prints a table (figure, target, measured, ratio or pass) and writes every figure, its
correctness checks and the machine to the JSON file. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import cluster_bench
import common
import device_bench
import ingest_bench
import outage_bench
import scale_bench
import stats_bench
from common import Figure, median_ms, p95_ms
from workload import last_weekday

SECTIONS = ("ingest", "stats", "scale", "device", "cluster")
RSS_TARGET_MB = 32  # the device agent's peak RSS (issue 16: the Pi's share)


@dataclass(frozen=True)
class Plan:
    """How much work each benchmark does (``--quick`` is the smaller plan)."""

    events: int = 20_000
    devices: int = 20
    repeats: int = 3
    backlog_days: tuple[int, ...] = (1, 7)
    page_runs: int = 30
    page_budget_s: float = 12.0
    fleet_desks: int = 1000
    fleet_templates: int = 8
    fleet_event_days: int = 28  # the Insights page's default four weeks of raw events
    idle_s: float = 60.0
    prompt_trials: int = 10
    presses: int = 20
    startup_trials: int = 5
    outage_desks: int = 1000
    outage_processes: int = 16  # the simulated desks' processes (each many MqttLinks)
    scale_sizes: tuple[int, ...] = scale_bench.SIZES  # one PostgreSQL fleet grown through these


FULL = Plan()
QUICK = Plan(
    events=2_000,
    devices=10,
    repeats=1,
    backlog_days=(1, 7),
    page_runs=10,
    page_budget_s=3.0,
    fleet_desks=50,
    fleet_templates=2,
    idle_s=10.0,
    prompt_trials=5,
    presses=10,
    startup_trials=3,
    outage_desks=50,
    outage_processes=2,
    scale_sizes=(10, 40),
)


class Report:
    def __init__(self) -> None:
        self.figures: list[Figure] = []
        self.skipped: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def attempt(self, name: str, work: Callable[[], None]) -> None:
        """Run one benchmark; a failure is recorded and the others still run."""
        print(f"... {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            work()
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        print(f"    {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


# --- ingest -------------------------------------------------------------------------------

# Ingest's share of the broker's ceiling to reach (issue 16, item 4; 0.5 before it).
INGEST_TARGET = 0.8


def ingest_checks(run: dict[str, Any]) -> dict[str, bool]:
    count = run.get("events", 0)
    return {
        "all stored (no loss)": run["missing"] == 0 and run["rows"] >= count,
        "no duplicate rows": run["rows"] == run["distinct_event_ids"] == count,
        "nothing rejected": run.get("rejected", 0) == 0 and run.get("db_errors", 0) == 0,
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [run["rate"] for run in runs if run["rate"]]
    return {"rate": statistics.median(rates) if rates else None, "samples": rates, "runs": runs}


def bench_ingest(report: Report, plan: Plan, workdir: Path, pg_ok: bool, end: date) -> None:
    """Ceiling and ingest runs alternate, ``plan.repeats`` times, and the medians are
    compared: on a shared machine a neighbour's load would otherwise decide the ratio."""
    payloads, events = ingest_bench.make_payloads(plan.events, plan.devices, end, workdir)
    runs: dict[str, list[dict[str, Any]]] = {}
    labels = {
        "ingest.sqlite": "ingest, SQLite (WAL, batched), 1 worker",
        "ingest.postgres_2w": "ingest, PostgreSQL, 2 workers (shared subscription)",
        "ingest.postgres_1w": "ingest, PostgreSQL, 1 worker (for comparison)",
    }
    # The PostgreSQL target is for several workers on a shared subscription; one
    # worker is measured beside it to show what the second one buys.
    targeted = {"ingest.sqlite", "ingest.postgres_2w"}

    def ceiling() -> None:
        runs.setdefault("ingest.ceiling", []).append(ingest_bench.ceiling(payloads, len(events)))

    def sqlite() -> None:
        url = ingest_bench.fresh_sqlite(workdir)
        runs.setdefault("ingest.sqlite", []).append(
            ingest_bench.ingest(payloads, events, url, 1, None)
        )

    def postgres(workers: int) -> None:
        from sitwatch.server.db import make_engine
        from sitwatch.server.migrate import upgrade

        with common.postgres_schema() as url:
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            group = f"bench{uuid.uuid4().hex[:6]}" if workers > 1 else None
            runs.setdefault(f"ingest.postgres_{workers}w", []).append(
                ingest_bench.ingest(payloads, events, url, workers, group)
            )

    for rep in range(plan.repeats):
        report.attempt(f"ingest ceiling #{rep + 1}", ceiling)
        report.attempt(f"ingest SQLite #{rep + 1}", sqlite)
        if pg_ok:
            report.attempt(f"ingest PostgreSQL, 2 workers #{rep + 1}", lambda: postgres(2))
            report.attempt(f"ingest PostgreSQL, 1 worker #{rep + 1}", lambda: postgres(1))

    if "ingest.ceiling" not in runs:
        return
    limit = _median_run(runs["ingest.ceiling"])
    report.add(
        Figure(
            "ingest.ceiling",
            "broker ceiling: publisher -> Mosquitto -> bare subscriber (QoS 1)",
            limit["rate"],
            "msg/s",
            details=limit,
            checks={
                "every message delivered": all(
                    run["received"] >= len(events) for run in runs["ingest.ceiling"]
                )
            },
        )
    )
    for key, label in labels.items():
        if key not in runs:
            continue
        found = _median_run(runs[key])
        checks: dict[str, bool] = {}
        for run in runs[key]:
            for name, held in ingest_checks(run).items():
                checks[name] = checks.get(name, True) and held
            if run["workers"] > 1:
                share = all(run["per_worker_stored"])
                checks["every worker took a share"] = (
                    checks.get("every worker took a share", True) and share
                )
        ratio = found["rate"] / limit["rate"] if found["rate"] and limit["rate"] else None
        fast = ratio is not None and ratio >= INGEST_TARGET
        if key in targeted:
            target = f">= {INGEST_TARGET:.0%} of ceiling"
            passed = fast and all(checks.values())
        else:  # no speed target, but losing or doubling events is still a failure
            target, passed = None, None if all(checks.values()) else False
        report.add(
            Figure(
                key,
                label,
                found["rate"],
                "events/s",
                target=target,
                passed=passed,
                ratio=ratio,
                details=found,
                checks=checks,
            )
        )

    for days in plan.backlog_days:

        def drain(days: int = days) -> None:
            run = ingest_bench.drain_backlog(days, end, workdir)
            checks = ingest_checks(run)
            checks["outbox empty"] = run["left_in_outbox"] == 0
            name = "24 h" if days == 1 else f"{days} days"
            report.add(
                Figure(
                    f"backlog.{days}d",
                    f"backlog drain: {name} of events + 5-min heartbeats",
                    run["seconds"],
                    "s",
                    target="< 60 s",
                    passed=run["seconds"] < 60 and all(checks.values()),
                    details=run,
                    checks=checks,
                )
            )

        report.attempt(f"backlog {days} d", drain)

    bench_outage(report, plan, workdir, pg_ok, end)


def bench_outage(report: Report, plan: Plan, workdir: Path, pg_ok: bool, end: date) -> None:
    """The whole floor's backlog at once, through the shipped broker configuration."""

    def run(db: str) -> None:
        if db == "sqlite":
            url = ingest_bench.fresh_sqlite(workdir)
            found = outage_bench.outage(plan.outage_desks, url, workdir, plan.outage_processes, end)
        else:
            from sitwatch.server.db import make_engine
            from sitwatch.server.migrate import upgrade

            with common.postgres_schema() as url:
                engine = make_engine(url)
                upgrade(engine)
                engine.dispose()
                found = outage_bench.outage(
                    plan.outage_desks, url, workdir, plan.outage_processes, end
                )
        checks = outage_bench.checks(found)
        seconds = found["seconds"]
        report.add(
            Figure(
                f"outage.{db}",
                f"fleet outage: {found['desks']} desks x 1 h backlog"
                f" ({found['events_per_desk']:.0f} events each) reconnect at once,"
                f" shipped broker config ({db})",
                seconds,
                "s",
                target="< 60 s",
                passed=seconds is not None and seconds < 60 and all(checks.values()),
                ratio=None if seconds is None else seconds / 60,
                details=found,
                checks=checks,
            )
        )

    report.attempt("outage SQLite", lambda: run("sqlite"))
    if pg_ok:
        report.attempt("outage PostgreSQL", lambda: run("postgresql"))


# --- stats --------------------------------------------------------------------------------


def timing_figure(
    key: str,
    label: str,
    samples: list[float],
    limit_ms: float | None,
    extra: dict[str, Any] | None = None,
) -> Figure:
    median = median_ms(samples)
    return Figure(
        key,
        label,
        median,
        "ms (median)",
        target=None if limit_ms is None else f"< {limit_ms:g} ms",
        passed=None if limit_ms is None else median < limit_ms,
        ratio=None if limit_ms is None else median / limit_ms,
        details={"p95_ms": p95_ms(samples), "runs": len(samples), **(extra or {})},
    )


def bench_stats(report: Report, plan: Plan, url: str, db: str) -> None:
    run = stats_bench.run(
        url,
        desks=plan.fleet_desks,
        templates=plan.fleet_templates,
        runs=plan.page_runs,
        event_days=plan.fleet_event_days,
        budget_s=plan.page_budget_s,
    )
    desk, fleet = run["desk_load"], run["fleet_load"]
    report.add(
        timing_figure(
            f"stats.desk_page.{db}",
            f"one desk, 1 year: page numbers ({db})",
            run["desk_page"],
            50,
            {"now": run["now"], "load": desk},
        )
    )
    report.add(
        timing_figure(
            f"stats.desk_html.{db}",
            f"one desk, 1 year: whole page GET, HTML ({db})",
            run["desk_html"],
            None,
        )
    )
    size = f"{fleet['desks']} desks x 1 year"
    report.add(
        timing_figure(
            f"stats.fleet_overview.{db}",
            f"fleet overview, {size}: page numbers ({db})",
            run["fleet_overview"],
            500,
            {"load": fleet, "query_plans": run["plans"]},
        )
    )
    report.add(
        timing_figure(
            f"stats.fleet_desk_page.{db}",
            f"one desk's page inside that fleet ({db})",
            run["fleet_desk_page"],
            50,
        )
    )
    report.add(
        timing_figure(
            f"stats.fleet_html.{db}",
            f"fleet overview: whole page GET, HTML ({db})",
            run["fleet_html"],
            None,
        )
    )
    days = plan.fleet_event_days
    for key, label, limit in (
        ("fleet_insights", f"fleet Insights, 4 weeks ({days} days of raw events): numbers", 300),
        ("fleet_insights_html", "fleet Insights, 4 weeks: whole page GET, HTML", 300),
        ("desk_insights", "one desk's Insights inside that fleet: numbers", 20),
        ("desk_insights_html", "one desk's Insights: whole page GET, HTML", None),
    ):
        extra = {"figures": run["fleet_insights_figures"]} if key == "fleet_insights" else None
        report.add(timing_figure(f"stats.{key}.{db}", f"{label} ({db})", run[key], limit, extra))


SCALE_PAGES = (  # key, label, the raw figure's key or None
    ("overview", "fleet overview: page numbers", "overview_raw"),
    ("insights", "fleet Insights, 4 weeks: numbers", "insights_raw"),
    ("desk_page", "one desk's page: numbers", "desk_page_raw"),
    ("csv_week", "CSV export, the fleet's last 7 days: whole download", "csv_week_raw"),
    ("csv_desk", "CSV export, one desk's year: whole download", None),
    ("csv_first_chunk", "CSV export, the fleet's whole history: first chunk", None),
)
SCALE_LIMIT_MS = 500


def bench_scale(report: Report, plan: Plan) -> None:
    """One PostgreSQL fleet grown through ``plan.scale_sizes``: each page at each size with
    its raw figure beside it, and how the time grows from one size to the next."""
    with common.postgres_schema() as url:
        run = scale_bench.run(
            url,
            sizes=plan.scale_sizes,
            templates=plan.fleet_templates,
            runs=plan.page_runs,
            event_days=plan.fleet_event_days,
            budget_s=plan.page_budget_s,
        )
    steps = run["steps"]
    largest = steps[-1]["desks"]
    for key, label, raw_key in SCALE_PAGES:
        medians = [median_ms(step[key]) for step in steps]
        growth = {
            f"{a['desks']}->{b['desks']}": round(mb / ma, 2) if ma else None
            for a, b, ma, mb in zip(steps, steps[1:], medians, medians[1:], strict=False)
        }
        for step, median in zip(steps, medians, strict=True):
            desks = step["desks"]
            extra: dict[str, Any] = {"desks": desks, "growth": growth, "now": run["now"]}
            if raw_key is not None:
                raw_ms = median_ms(step[raw_key])
                extra["raw_ms"] = raw_ms
                extra["raw_over_page"] = round(raw_ms / median, 1) if median else None
            if key == "overview":
                extra["load"] = step["load"]
            if key == "insights":
                extra["funnel_derived_vs_raw"] = step["checks"]
            figure = timing_figure(
                f"scale.{key}.{desks}",
                f"{desks} desks x 1 year: {label} (postgresql)",
                step[key],
                SCALE_LIMIT_MS if desks == largest else None,
                extra,
            )
            if key == "insights":  # the derived funnel says what the raw events say
                figure.checks = {
                    f"{name} derived = raw": derived == raw
                    for name, (derived, raw) in step["checks"].items()
                }
            report.add(figure)
            if raw_key is not None:
                report.add(
                    timing_figure(
                        f"scale.{raw_key}.{desks}",
                        f"{desks} desks: the same without the derived tables (raw)",
                        step[raw_key],
                        None,
                        {"desks": desks},
                    )
                )


# --- device -------------------------------------------------------------------------------


def bench_device(report: Report, plan: Plan, workdir: Path) -> None:
    def idle() -> None:
        run = device_bench.agent_idle(plan.idle_s, workdir)
        checks = {
            "seated event stored": run["seated_event_stored"],
            "agent alive throughout": run["alive_throughout"],
        }
        report.add(
            Figure(
                "device.cpu",
                "device agent idle, user seated: CPU (% of one core)",
                run["cpu_percent_of_core"],
                "% core",
                target="< 0.5 %",
                passed=run["cpu_percent_of_core"] < 0.5 and all(checks.values()),
                ratio=run["cpu_percent_of_core"] / 0.5,
                details=run,
                checks=checks,
            )
        )
        report.add(
            Figure(
                "device.cpu_per_hour",
                "device agent idle: CPU seconds per hour",
                run["cpu_seconds_per_hour"],
                "s/h",
                target="< 18 s/h (0.5 %)",
                passed=run["cpu_seconds_per_hour"] < 18,
                ratio=run["cpu_seconds_per_hour"] / 18,
            )
        )
        report.add(
            Figure(
                "device.peak_rss",
                "device agent: peak RSS (VmHWM)",
                run["peak_rss_mb"],
                "MB",
                target=f"< {RSS_TARGET_MB} MB",
                passed=run["peak_rss_mb"] < RSS_TARGET_MB,
                ratio=run["peak_rss_mb"] / RSS_TARGET_MB,
            )
        )

    def startup() -> None:
        run = device_bench.agent_startup(plan.startup_trials, workdir)
        report.add(
            Figure(
                "device.startup",
                "device agent start-up: process start -> 'online' at the broker",
                None if run["median_s"] is None else run["median_s"] * 1000,
                "ms (median)",
                details=run,
                checks={"every start connected": run["connected"] == run["trials"]},
            )
        )
        report.add(
            Figure(
                "device.help",
                "sitwatch-device --help (imports no config models)",
                run["help_median_s"] * 1000,
                "ms (median)",
            )
        )

    def prompt() -> None:
        run = device_bench.prompt_delay(plan.prompt_trials, workdir)
        report.add(
            Figure(
                "device.prompt_delay",
                "sitting limit -> prompt at the event sinks (real time)",
                None if run["median_s"] is None else run["median_s"] * 1000,
                "ms (median)",
                details=run,
                checks={"every trial prompted": run["prompted"] == run["trials"]},
            )
        )

    def button() -> None:
        run = device_bench.button_to_broker(plan.presses, workdir)
        report.add(
            Figure(
                "device.button_to_broker",
                "button release -> event at a broker subscriber",
                None if run["median_s"] is None else run["median_s"] * 1000,
                "ms (median)",
                details=run,
                checks={"every press arrived": run["arrived"] == run["presses"]},
            )
        )

    report.attempt("device agent idle", idle)
    report.attempt("device agent start-up", startup)
    report.attempt("prompt delay", prompt)
    report.attempt("button to broker", button)


# --- output -------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(figures: list[Figure]) -> str:
    rows = [("figure", "target", "measured", "ratio / pass")]
    for f in figures:
        verdict = {True: "pass", False: "MISS", None: ""}[f.passed]
        if f.checks and not all(f.checks.values()):
            verdict = "CHECK FAILED"
        ratio = f"{f.ratio:.2f} " if f.ratio is not None else ""
        rows.append(
            (f.label, f.target or "-", f"{_number(f.value)} {f.unit}", (ratio + verdict).strip())
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "latest.json"))
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run ({', '.join(SECTIONS)})",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args(argv)
    sections = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    plan = QUICK if args.quick else FULL

    started = datetime.now(UTC)
    load_at_start = [round(load, 2) for load in os.getloadavg()]
    start = time.perf_counter()
    report = Report()
    pg_version, pg_reason = (
        (None, "--no-postgres") if args.no_postgres else (common.postgres_version())
    )
    if pg_version is None:
        report.skipped["postgresql"] = pg_reason or "unavailable"
        print(f"skipping PostgreSQL: {pg_reason}", file=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="sitwatch-bench-"))
    end = last_weekday(date.today())
    try:
        if "ingest" in sections:
            bench_ingest(report, plan, workdir, pg_version is not None, end)
        if "stats" in sections:
            report.attempt(
                "stats SQLite",
                lambda: bench_stats(report, plan, f"sqlite:///{workdir / 'stats.db'}", "sqlite"),
            )
            if pg_version is not None:

                def stats_postgres() -> None:
                    with common.postgres_schema() as url:
                        bench_stats(report, plan, url, "postgresql")

                report.attempt("stats PostgreSQL", stats_postgres)
        if "scale" in sections and pg_version is not None:
            report.attempt("scale PostgreSQL", lambda: bench_scale(report, plan))
        if "device" in sections:
            bench_device(report, plan, workdir)
        if "cluster" in sections:
            cluster_bench.bench(report, args.quick, workdir, end)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    result = {
        "mode": "quick" if args.quick else "full",
        "plan": plan.__dict__,
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - start, 1),
        "machine": {**common.machine(pg_version), "load_average_at_start": load_at_start},
        "figures": [f.as_dict() for f in report.figures],
        "skipped": report.skipped,
        "errors": report.errors,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    machine = result["machine"]
    print(
        f"\nsitwatch bench ({result['mode']}), {machine['cores']} cores, {machine['cpu_model']},"
        f" Python {machine['python']}, SQLite {machine['sqlite']},"
        f" Mosquitto {machine['mosquitto']}, PostgreSQL {machine['postgresql'] or '-'}"
        f"; {result['duration_s']} s\n"
    )
    print(table(report.figures))
    for name, reason in report.skipped.items():
        print(f"skipped {name}: {reason}")
    for name, error in report.errors.items():
        print(f"ERROR in {name}: {error}")
    print(f"\nwritten to {out}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
