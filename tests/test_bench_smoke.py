"""The benchmarks run end to end (``bench/run.py --quick``) and report every figure with its
correctness checks held: no event lost, none stored twice, every press and prompt seen.
Speeds are not asserted: benchmarks measure, tests do not time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sitwatch.broker import find_mosquitto

ROOT = Path(__file__).resolve().parents[1]
SQLITE_FIGURES = {
    "ingest.ceiling",
    "ingest.sqlite",
    "backlog.1d",
    "backlog.7d",
    "stats.desk_page.sqlite",
    "stats.desk_html.sqlite",
    "stats.fleet_overview.sqlite",
    "stats.fleet_desk_page.sqlite",
    "stats.fleet_html.sqlite",
    "stats.fleet_insights_html.sqlite",
    "device.cpu",
    "device.cpu_per_hour",
    "device.peak_rss",
    "device.prompt_delay",
    "device.button_to_broker",
    "device.startup",
    "device.help",
    "outage.sqlite",
}
POSTGRES_FIGURES = {
    "ingest.postgres_2w",
    "ingest.postgres_1w",
    "stats.desk_page.postgresql",
    "stats.fleet_overview.postgresql",
    "outage.postgresql",
    "scale.overview.40",  # the fleet grown 10 -> 40 desks (the full run: 100 -> 10,000)
    "scale.insights_raw.40",
    "scale.csv_first_chunk.40",
}


@pytest.mark.slow
def test_quick_bench_reports_every_figure_with_its_checks_held(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto not installed")
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["errors"] == {}
    machine = report["machine"]
    assert machine["cores"] and machine["cpu_model"] and machine["sqlite"] and machine["mosquitto"]

    figures = {figure["key"]: figure for figure in report["figures"]}
    expected = SQLITE_FIGURES | (POSTGRES_FIGURES if machine["postgresql"] else set())
    assert expected <= set(figures), f"missing figures: {expected - set(figures)}"
    for key, figure in figures.items():
        assert figure["value"] is not None, key
        assert figure["checks"] == {} or all(figure["checks"].values()), (key, figure["checks"])
    if not machine["postgresql"]:
        assert "postgresql" in report["skipped"]

    for key in ("ingest.sqlite", *(["ingest.postgres_2w"] if machine["postgresql"] else [])):
        runs = figures[key]["details"]["runs"]
        assert runs
        for run in runs:
            assert run["missing"] == 0
            assert run["rows"] == run["distinct_event_ids"] == run["events"]
        assert figures[key]["checks"]  # the loss and duplicate checks were made
    for days in (1, 7):
        run = figures[f"backlog.{days}d"]["details"]
        assert run["left_in_outbox"] == 0
        assert run["rows"] == run["distinct_event_ids"] == run["events"]
    assert figures["device.button_to_broker"]["details"]["event_types"] == ["drill_completed"]
    assert "figure" in result.stdout and "target" in result.stdout  # the table was printed
