"""The PLC's hysteresis memory: a pump must not run on after its tank passed the stop level."""

from __future__ import annotations

import numpy as np

from civicguard.detect.water.detector import WaterAttackModel
from civicguard.detect.water.plc import ControlBand, band_breaches
from civicguard.detect.water.scada import ScadaTable, parse_time

#: Column 0 the pump's status, column 1 its tank's level.
BAND = ControlBand(
    link="PU2",
    status=0,
    level=1,
    highest_on=4.5,
    lowest_off=1.0,
    starts_below=1.1,
    stops_above=4.3,
)


def _rows(status: list[int], level: list[float]) -> np.ndarray:
    return np.column_stack([np.array(status, dtype=float), np.array(level)])


def test_normal_cycle_raises_nothing() -> None:
    # Starts below 1, fills, stops between two readings around 4.4, drains, starts again.
    status = [0, 1, 1, 1, 1, 0, 0, 0, 1, 1]
    level = [1.2, 0.9, 2.0, 3.2, 4.4, 4.2, 2.5, 1.2, 0.95, 2.0]
    assert not band_breaches(_rows(status, level), (BAND,), 0.1).any()


def test_pump_running_on_after_the_stop_level_is_a_breach_until_a_legit_restart() -> None:
    # The level reading passes 4.5 with the pump on, then falls back into the band while the
    # pump keeps running: the PLC would have stopped it and not restarted it above 1.1.
    status = [1, 1, 1, 1, 1, 1, 0, 0, 1]
    level = [3.0, 4.2, 4.8, 4.3, 3.5, 2.0, 1.5, 1.0, 0.9]
    breaches = band_breaches(_rows(status, level), (BAND,), 0.1)[:, 0]
    assert breaches.tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0]


def test_a_start_at_a_high_level_is_a_breach() -> None:
    status = [1, 1, 0, 0, 1, 1]
    level = [3.0, 4.4, 4.0, 3.0, 3.2, 3.5]
    assert band_breaches(_rows(status, level), (BAND,), 0.1)[:, 0].tolist() == [0, 0, 0, 0, 0, 0]
    # Unknown state (never saw a hard limit) gives no verdict; once known, a high start breaks.
    status = [1, 1, 0, 0, 1, 1]
    level = [4.4, 4.7, 4.0, 3.0, 3.2, 3.5]
    assert band_breaches(_rows(status, level), (BAND,), 0.1)[:, 0].tolist() == [0, 1, 0, 0, 1, 1]


def test_learned_bands_hold_in_the_normal_year_and_catch_attack_3(
    model: WaterAttackModel, normal_year: ScadaTable, attacked: ScadaTable
) -> None:
    links = [b.link for b in model.bands]
    assert "PU2" in links and "PU7" in links
    margin = model.settings.control_margin
    assert not band_breaches(normal_year.values, model.bands, margin).any()
    breaches = band_breaches(attacked.values, model.bands, margin)[:, links.index("PU2")]
    attack3 = (attacked.ts >= parse_time("09/10/16 09")) & (
        attacked.ts <= parse_time("11/10/16 20")
    )
    assert breaches[attack3].all()  # all 60 hours, where the level check alone sees gaps
    quiet = (attacked.ts >= parse_time("05/07/16 00")) & (attacked.ts <= parse_time("31/08/16 23"))
    assert not breaches[quiet].any()
