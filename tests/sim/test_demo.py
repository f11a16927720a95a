"""``civicguard demo`` end to end as a user runs it: a subprocess with its own data dir and port.

One demo run serves both end-to-end tests of this module: while it runs, an operator's browser
must see a scenario's alert arrive live; once it has ended, its summary must report every
scenario detected and no false alert. The browser test comes first so that it meets the demo
while it is still running (pytest runs a module's tests in the order they are written, and
under pytest-xdist ``RUN_TOGETHER`` in tests/conftest.py keeps them on one worker).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from civicguard.sim.demo import score
from civicguard.sim.scenarios import CYCLE_KINDS, PlannedScenario, ScenarioKind, ScenarioRecord
from tests.browser import CHROMIUM, LAUNCH_ARGS, playwright
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("civicguard")
#: Simulated (= wall-clock) seconds the shared demo runs, and the longest it may take in all.
DEMO_S = 60
DEMO_TIMEOUT_S = 180


def _record(
    device: str, start: float, end: float, kind: ScenarioKind = ScenarioKind.SUBSTATION_ATTACK
) -> ScenarioRecord:
    plan = PlannedScenario(kind=kind, device_id=device, at=0, duration=1)
    return ScenarioRecord(plan=plan, started_at=start, ended_at=end)


def test_score_matches_alerts_by_device_and_window() -> None:
    records = [_record("a", 100.0, 120.0), _record("b", 100.0, 100.0)]
    alerts = [
        {"device_id": "a", "detector": "normal_band", "created_at": 100.0},  # at injection
        {"device_id": "a", "detector": "normal_band", "created_at": 131.0},  # past end + 10 s
        {"device_id": "c", "detector": "normal_band", "created_at": 110.0},  # no scenario on c
        {"device_id": None, "detector": "normal_band", "created_at": 110.0},  # nobody's
    ]
    outcomes, false = score(records, alerts)
    assert [o.detected for o in outcomes] == [True, False]
    assert outcomes[0].first_alert == alerts[0]
    assert sorted(map(id, false)) == sorted(map(id, alerts[1:]))


def test_an_alert_raised_before_the_injection_is_not_credited() -> None:
    """An alert half a second before the scenario began saw something else: it detects
    nothing, and it is a false alert."""
    records = [_record("a", 100.0, 120.0)]
    early = {"device_id": "a", "detector": "normal_band", "created_at": 99.5}
    outcomes, false = score(records, [early])
    assert [o.detected for o in outcomes] == [False]
    assert false == [early]
    # The same alert from the injection on is the detection.
    on_time = {**early, "created_at": 100.0}
    outcomes, false = score(records, [early, on_time])
    assert outcomes[0].first_alert == on_time
    assert false == [early]


def test_only_the_detectors_a_scenario_is_about_detect_it() -> None:
    """A flood is seen by the flood detector; a band alert on the flooding device is not it."""
    records = [_record("a", 100.0, 110.0, ScenarioKind.MESSAGE_FLOOD)]
    band = {"device_id": "a", "detector": "normal_band", "created_at": 101.0}
    flood = {"device_id": "a", "detector": "flood", "created_at": 102.0}
    outcomes, false = score(records, [band])
    assert [o.detected for o in outcomes] == [False]
    assert false == [band]
    outcomes, false = score(records, [band, flood])
    assert outcomes[0].first_alert == flood
    assert false == [band]


def test_a_silence_alert_does_not_detect_an_attack_on_the_values() -> None:
    """A substation under attack that a lagging pipeline calls silent was not detected."""
    records = [_record("s", 100.0, 120.0, ScenarioKind.SUBSTATION_ATTACK)]
    silence = {"device_id": "s", "detector": "silence", "created_at": 101.0}
    band = {"device_id": "s", "detector": "normal_band", "created_at": 102.0}
    outcomes, false = score(records, [silence])
    assert [o.detected for o in outcomes] == [False]
    outcomes, false = score(records, [silence, band])
    assert outcomes[0].first_alert == band
    assert false == [silence]


@dataclass
class DemoRun:
    """A ``civicguard demo`` subprocess, its data dir and URL; its output once it has ended."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    url: str
    stdout_file: Path
    stderr_file: Path
    started: float = field(default_factory=time.monotonic)

    def running(self) -> bool:
        """True while the demo process has not exited."""
        return self.process.poll() is None

    def finish(self) -> tuple[int, str, str]:
        """Wait for the demo to end by itself: (exit code, stdout, stderr)."""
        left = DEMO_TIMEOUT_S - (time.monotonic() - self.started)
        code = self.process.wait(timeout=max(left, 1.0))
        return code, self.stdout_file.read_text(), self.stderr_file.read_text()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """One minute of the demo city (seed 3) on a free port, shared by this module's tests."""
    base = tmp_path_factory.mktemp("demo")
    data_dir = base / "city"
    stdout_file, stderr_file = base / "stdout.txt", base / "stderr.txt"
    port = free_port()
    command = [str(CLI), "demo", "--duration", str(DEMO_S), "--seed", "3",
               "--data-dir", str(data_dir), "--port", str(port)]  # fmt: skip
    # Output goes to files: a pipe nobody reads while the demo runs could fill and stall it.
    with stdout_file.open("wb") as out, stderr_file.open("wb") as err:
        process = subprocess.Popen(
            command, stdout=out, stderr=err, cwd=ROOT, env=os.environ | {"COLUMNS": "140"}
        )
    run = DemoRun(
        process=process,
        data_dir=data_dir,
        url=f"http://127.0.0.1:{port}",
        stdout_file=stdout_file,
        stderr_file=stderr_file,
    )
    try:
        yield run
    finally:
        if run.running():
            process.kill()
        process.wait()


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float, demo: DemoRun) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if not demo.running():
            _, out, err = demo.finish()
            raise AssertionError(f"the demo exited while waiting for {what}: {(out + err)[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
@pytest.mark.browser
def test_operator_sees_a_scenario_alert_during_the_demo(demo: DemoRun) -> None:
    api = playwright()
    expect, sync_playwright = api.expect, api.sync_playwright
    # Runs first in the module, so it meets the demo before its first scenario (if the demo has
    # already exited, waiting for the command centre fails with the demo's output).
    url = demo.url
    _wait_for(lambda: _up(url + "/api/v1/health") or _up(url + "/"), "the command centre", 60, demo)
    staff = dict(
        line.split(" ", 1) for line in (demo.data_dir / "demo-staff.txt").read_text().splitlines()
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url + "/")
        page.fill("#username", "operator")
        page.fill("#password", staff["operator"])
        page.click("#login-submit")
        expect(page.locator("#streets path").first).to_be_attached(timeout=15_000)
        # The first scenario is injected after the warm-up; its alert must arrive live.
        expect(page.locator("#alerts li[data-alert]").first).to_be_visible(timeout=40_000)
        expect(page.locator("#incidents li[data-incident]").first).to_be_visible(timeout=5_000)
        expect(page.locator("#markers g.marker").first).to_be_attached()
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / "demo-command-centre.png"))
        browser.close()
    code, output, errors = demo.finish()
    assert code == 0, (output + errors)[-3000:]
    last = output.strip().splitlines()[-2:]
    assert last[0].startswith("scenarios detected: "), output[-3000:]
    assert last[1].startswith("false alerts: "), output[-3000:]


@pytest.mark.slow
def test_demo_runs_a_minute_and_reports(demo: DemoRun) -> None:
    code, stdout, stderr = demo.finish()
    assert code == 0, stderr[-3000:]
    lines = [line for line in stdout.splitlines() if line.strip()]
    detected = re.fullmatch(r"scenarios detected: (\d+)/(\d+)", lines[-2])
    false = re.fullmatch(r"false alerts: (\d+)", lines[-1])
    assert detected and false, stdout[-2000:]
    assert int(detected[2]) == len(CYCLE_KINDS)
    assert int(detected[1]) == int(detected[2]), stdout[-3000:]
    assert int(false[1]) == 0, stdout[-3000:]
    assert "Traceback" not in stderr
