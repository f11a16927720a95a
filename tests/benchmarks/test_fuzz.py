"""``civicguard bench fuzz``: a quick run finds nothing, and a run can find something.

The quick runs go through the command line, one target each, as a developer runs them; the
full run (a million inputs) is ``civicguard bench fuzz`` itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from civicguard.benchmarks.fuzz import Target, TargetReport, run_with_hypothesis, save_findings
from civicguard.catalog.loader import CatalogError, load_catalog
from civicguard.clock import ManualClock
from civicguard.ingest.model import Device
from civicguard.ingest.replay import replay_file
from civicguard.platform import Platform

CLI = Path(sys.executable).with_name("civicguard")

#: Inputs of the quick run, shared among the targets (decode 2,400, replay 450, catalog 150).
QUICK = 3_000


def test_a_quick_run_finds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "findings"
    run = subprocess.run(
        [str(CLI), "bench", "fuzz", "--inputs", str(QUICK), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    summary = json.loads((out / "findings.json").read_text())
    assert summary["findings"] == [], run.stdout
    assert summary["inputs"] == {"decode": 2_400, "replay": 450, "catalog": 150}
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no undocumented exception" in run.stdout


def test_a_finding_is_reported_once_with_its_first_reproducer(tmp_path: Path) -> None:
    def fragile(data: bytes) -> None:
        if b"\x07" in data:
            raise KeyError("a planted defect")
        if len(data) > 3:
            raise ValueError("documented: too long")

    import hypothesis.strategies as st

    target = Target("planted", fragile, (ValueError,), st.binary(max_size=6))
    report = run_with_hypothesis(target, 400, seed=1)
    assert report.inputs == 400
    [finding] = report.findings.values()
    assert finding.kind == "KeyError"
    assert b"\x07" in finding.reproducer
    assert finding.count >= 1

    save_findings([report, TargetReport("clean", inputs=5)], tmp_path)
    summary = json.loads((tmp_path / "findings.json").read_text())
    assert summary["inputs"] == {"planted": 400, "clean": 5}
    [listed] = summary["findings"]
    assert (listed["target"], listed["exception"]) == ("planted", "KeyError")
    assert (tmp_path / listed["reproducer"]).read_bytes() == finding.reproducer


def test_a_catalog_that_is_not_utf8_is_a_catalog_error(tmp_path: Path) -> None:
    # Found by the fuzzer: load_catalog raised UnicodeDecodeError, which it does not document.
    path = tmp_path / "catalog.yaml"
    path.write_bytes(b"city: Aguascalientes\ncontroller: \xe4\n")
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    assert "not UTF-8" in str(raised.value) and str(path) in str(raised.value)


def test_a_csv_replay_with_a_byte_that_is_not_utf8_refuses_that_line(
    tmp_path: Path, platform: Platform, clock: ManualClock
) -> None:
    # Found by the fuzzer: replay_file raised UnicodeDecodeError and stopped the replay.
    device = Device(id="air-1", stream="air.quality", lat=21.88, lon=-102.29, district="Centro")
    platform.registry.provision(device, clock.now())
    ts = clock.now() - 10
    path = tmp_path / "readings.csv"
    path.write_bytes(
        b"device,seq,ts,pm25,pm10,no2\n"
        + f"air-1,1,{ts},12.5,20,30\n".encode()
        + f"air-1,2,{ts},1\xff2,20,30\n".encode("latin-1")
        + f"air-1,3,{ts},14.0,20,30\n".encode()
    )
    report = replay_file(platform, path)
    assert (report.accepted, report.rejected) == (2, 1)
    assert report.problems[0].startswith("line 3: wrong_type: values.pm25")


@pytest.mark.parametrize("escape", ["\\U0011FFFF", "\\U99999999"])
def test_a_yaml_escape_beyond_unicode_is_a_catalog_error(escape: str, tmp_path: Path) -> None:
    # Found by the fuzzer (a million inputs): PyYAML raised ValueError (or OverflowError) from
    # chr(), neither of them a YAMLError, and load_catalog let it through.
    path = tmp_path / "catalog.yaml"
    path.write_text(f'city: "{escape}"\n')
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    assert "not valid YAML" in str(raised.value)
