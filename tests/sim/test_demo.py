"""``civicguard demo`` end to end as a user runs it: a subprocess with its own data dir and port."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from civicguard.sim.demo import score
from civicguard.sim.scenarios import CYCLE_KINDS, PlannedScenario, ScenarioKind, ScenarioRecord
from tests.services import free_port

CLI = Path(sys.executable).with_name("civicguard")


def _record(device: str, start: float, end: float) -> ScenarioRecord:
    plan = PlannedScenario(kind=ScenarioKind.DEVICE_SILENT, device_id=device, at=0, duration=1)
    return ScenarioRecord(plan=plan, started_at=start, ended_at=end)


def test_score_matches_alerts_by_device_and_window() -> None:
    records = [_record("a", 100.0, 120.0), _record("b", 100.0, 100.0)]
    alerts = [
        {"device_id": "a", "created_at": 99.5},  # just before: explained
        {"device_id": "a", "created_at": 131.0},  # after end + 10 s: false
        {"device_id": "c", "created_at": 110.0},  # no scenario on c: false
        {"device_id": None, "created_at": 110.0},  # nobody's: false
    ]
    outcomes, false = score(records, alerts)
    assert [o.detected for o in outcomes] == [True, False]
    assert outcomes[0].first_alert == alerts[0]
    assert len(false) == 3


@pytest.mark.slow
def test_demo_runs_a_minute_and_reports(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(CLI), "demo", "--duration", "60", "--seed", "3", "--data-dir", str(tmp_path / "d"),
         "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    detected = re.fullmatch(r"scenarios detected: (\d+)/(\d+)", lines[-2])
    false = re.fullmatch(r"false alerts: (\d+)", lines[-1])
    assert detected and false, run.stdout[-2000:]
    assert int(detected[2]) == len(CYCLE_KINDS)
    assert int(detected[1]) == int(detected[2]), run.stdout[-3000:]
    assert int(false[1]) == 0, run.stdout[-3000:]
    assert "Traceback" not in run.stderr
