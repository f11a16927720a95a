"""BATADAL's metric and report on hand-made series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from civicguard.detect.water.scada import parse_time
from civicguard.detect.water.scoring import (
    AttackWindow,
    ReportedAttack,
    batadal_score,
    detected_events,
    device_of,
    time_to_detection,
    write_report,
)

HOUR = 3600.0
TS = np.arange(20) * HOUR


def _flags(*hours: int) -> np.ndarray:
    out = np.zeros(20, dtype=bool)
    out[list(hours)] = True
    return out


def test_ttd_counts_hours_from_the_start_and_is_the_duration_when_missed() -> None:
    attack = AttackWindow(start=5 * HOUR, end=9 * HOUR)
    assert time_to_detection(TS, _flags(8, 9), attack) == (3, 5)
    assert time_to_detection(TS, _flags(2, 12), attack) == (5, 5)  # flags outside do not count
    assert time_to_detection(TS, _flags(5), attack) == (0, 5)


def test_score_combines_ttd_and_confusion_matrix() -> None:
    attacks = [
        AttackWindow(start=5 * HOUR, end=9 * HOUR),
        AttackWindow(start=15 * HOUR, end=16 * HOUR),
    ]
    truth = _flags(5, 6, 7, 8, 9, 15, 16)
    flags = _flags(7, 8, 9, 0, 1)  # second attack missed, two false alarms
    r = batadal_score(TS, flags, attacks, truth)
    assert r.ttd == (2, 2)
    assert r.s_ttd == pytest.approx(1 - (2 / 5 + 2 / 2) / 2)
    assert r.tpr == pytest.approx(3 / 7)
    assert r.tnr == pytest.approx(11 / 13)
    assert r.s_cm == pytest.approx((3 / 7 + 11 / 13) / 2)
    assert r.s == pytest.approx(0.5 * r.s_ttd + 0.5 * r.s_cm)


def test_unscored_hours_leave_the_confusion_matrix() -> None:
    attacks = [AttackWindow(start=5 * HOUR, end=9 * HOUR)]
    truth = _flags(5, 6)
    known = ~_flags(7, 8, 9)
    r = batadal_score(TS, _flags(5, 6, 7, 8, 9), attacks, truth, scored=known)
    assert (r.tpr, r.tnr) == (1.0, 1.0)
    r_all = batadal_score(TS, _flags(5, 6, 7, 8, 9), attacks, truth)
    assert r_all.tnr == pytest.approx(15 / 18)


def test_report_lists_runs_of_flagged_hours_in_the_rules_format(tmp_path: Path) -> None:
    start = parse_time("04/01/17 00")
    ts = start + np.arange(30) * HOUR
    flags = np.zeros(30, dtype=bool)
    flags[3:6] = True
    flags[25:] = True
    events = detected_events(ts, flags)
    assert [(e.start - start) / HOUR for e in events] == [3.0, 25.0]
    path = tmp_path / "report.csv"
    reported = [
        ReportedAttack(start=events[0].start, end=events[0].end, devices=("T1", "PU1")),
        ReportedAttack(start=events[1].start, end=events[1].end, devices=("V2",)),
    ]
    write_report(path, reported)
    # Rules, appendix A: no header; id, start, end ("DD-MM-YY hh"), devices separated by spaces.
    assert path.read_text(encoding="utf-8").splitlines() == [
        "1,04-01-17 03,04-01-17 05,T1 PU1",
        "2,05-01-17 01,05-01-17 05,V2",
    ]


def test_devices_are_named_as_the_network_names_them() -> None:
    assert [device_of(t) for t in ("L_T7", "F_PU10", "S_V2", "P_J14")] == [
        "T7",
        "PU10",
        "V2",
        "J14",
    ]
