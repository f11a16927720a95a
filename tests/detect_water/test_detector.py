"""The detector on BATADAL: physics residuals, live against batch, alerts naming devices."""

from __future__ import annotations

import numpy as np

from civicguard.detect.water.detector import (
    LiveWaterWatch,
    WaterAttackModel,
    detect_batch,
    full_evidence,
    hourly_flags,
)
from civicguard.detect.water.network import WaterNetwork
from civicguard.detect.water.physics import hour_of_day, pump_stations
from civicguard.detect.water.scada import ScadaTable, parse_time


def _balance(model: WaterAttackModel, table: ScadaTable, tank: str) -> np.ndarray:
    v = table.values
    residuals = model.physics.balance_residuals(v[:-1], v[1:], hour_of_day(table.ts[1:]))
    return residuals[:, model.physics.balance_names().index(f"L_{tank}")]


def _window(table: ScadaTable, start: str, end: str) -> np.ndarray:
    return (table.ts >= parse_time(start)) & (table.ts <= parse_time(end))


def test_t1_mass_balance_holds_in_normal_year_and_breaks_in_attack_3(
    model: WaterAttackModel, normal_year: ScadaTable, attacked: ScadaTable
) -> None:
    normal = np.abs(_balance(model, normal_year, "T1"))
    assert np.percentile(normal, 99) < 5
    # Attack 3: T1's readings held low while PU1/PU2 keep pumping.
    attack3 = _window(attacked, "09/10/16 09", "11/10/16 20")[1:]
    during = np.abs(_balance(model, attacked, "T1"))[attack3]
    assert during.max() > 20


def test_status_flow_and_controls_are_clean_in_normal_year(
    model: WaterAttackModel, normal_year: ScadaTable
) -> None:
    assert not model.physics.status_flow_breaches(normal_year.values).any()
    assert not (model.physics.control_breaches(normal_year.values, 0.1) > 0).any()


def test_attacks_are_flagged_and_name_the_attacked_devices(
    model: WaterAttackModel, attacked: ScadaTable
) -> None:
    verdicts = detect_batch(model, attacked)
    flags = np.array([v.under_attack for v in verdicts])
    attack5 = _window(attacked, "26/11/16 17", "29/11/16 04")
    assert flags[attack5].mean() > 0.8
    quiet = _window(attacked, "05/07/16 00", "31/08/16 23")
    assert flags[quiet].mean() < 0.1
    # Attack 5 slows PU7: the alert should name PU7 or its neighbours in T4's zone.
    named = {tag for v, hit in zip(verdicts, attack5, strict=True) if hit for tag in v.implicated}
    assert named & {"F_PU7", "F_PU6", "P_J415", "L_T4"}


def test_live_one_reading_at_a_time_matches_batch(
    model: WaterAttackModel, attacked: ScadaTable
) -> None:
    part = _window(attacked, "01/09/16 00", "05/10/16 00")
    table = ScadaTable(columns=attacked.columns, ts=attacked.ts[part], values=attacked.values[part])
    batch = detect_batch(model, table)
    watch = LiveWaterWatch(model)
    live = [
        watch.push(float(ts), dict(zip(table.columns, row.tolist(), strict=True)))
        for ts, row in zip(table.ts, table.values, strict=True)
    ]
    assert [v.under_attack for v in live] == [v.under_attack for v in batch]
    assert any(v.under_attack for v in live)  # the window holds attacks 1 and 2
    np.testing.assert_allclose([v.score for v in live], [v.score for v in batch], rtol=1e-9)


def test_pump_stations_pair_each_pump_with_its_gauges(ctown: WaterNetwork) -> None:
    columns = tuple(f"P_{j}" for j in ("J289", "J415", "J280", "J269")) + tuple(
        f"{p}_PU{i}" for i in (1, 6, 7) for p in "FS"
    )
    stations = pump_stations(ctown, columns)
    # PU7 sits between J290 and J291, one pipe from station S3's gauges.
    assert stations["PU7"] == stations["PU6"] == ("J289", "J415")
    assert stations["PU1"] == ("J280", "J269")


def test_pu7_flow_follows_its_curve_until_attack_5_slows_it(
    model: WaterAttackModel, normal_year: ScadaTable, attacked: ScadaTable
) -> None:
    k = model.physics.curve_names().index("F_PU7")
    normal = np.abs(model.physics.curve_residuals(normal_year.values)[:, k])
    assert np.percentile(normal, 99.9) < 10
    attack5 = _window(attacked, "26/11/16 17", "27/11/16 04")
    during = np.abs(model.physics.curve_residuals(attacked.values)[attack5, k])
    assert np.median(during) > 100


def test_fast_flags_match_the_hour_by_hour_step(
    model: WaterAttackModel, attacked: ScadaTable
) -> None:
    evidence = full_evidence(model, attacked)
    stepped = [v.under_attack for v in detect_batch(model, attacked, evidence)]
    assert hourly_flags(model, evidence).tolist() == stepped
    assert 0 < sum(stepped) < len(stepped)
