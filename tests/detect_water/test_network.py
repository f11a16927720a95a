"""The EPANET parser reads C-Town's tanks, pumps, valves and controls."""

from __future__ import annotations

from civicguard.detect.water.network import WaterNetwork, parse_inp
from civicguard.detect.water.physics import zone_links


def test_ctown_has_seven_tanks_eleven_pumps_four_valves(ctown: WaterNetwork) -> None:
    assert sorted(t.id for t in ctown.tanks) == [f"T{i}" for i in range(1, 8)]
    assert [p.id for p in ctown.pumps] == [f"PU{i}" for i in range(1, 12)]
    assert sorted(v.id for v in ctown.valves) == ["V2", "V45", "V47", "v1"]
    assert sum(1 for x in ctown.links if x.kind == "pipe") > 400
    assert ctown.tank("T1").area > 700  # 31.3 m across


def test_controls_say_which_pump_fills_which_tank(ctown: WaterNetwork) -> None:
    feeders = ctown.feeders()
    assert set(feeders["T1"]) >= {"PU1", "PU2"}
    assert feeders["T2"] == ("V2",)
    assert set(feeders["T4"]) == {"PU6", "PU7"}
    assert set(feeders["T7"]) == {"PU10", "PU11"}
    # PU9 has no control: the pipes from its delivery side lead to T5.
    assert ctown.feeder_tank("PU9") == "T5"


def test_zone_links_are_the_pumps_at_the_zone_boundary(ctown: WaterNetwork) -> None:
    assert set(zone_links(ctown, "T4")) == {"PU6", "PU7", "v1", "V45", "V47"}
    assert set(zone_links(ctown, "T3")) == {"PU4", "PU5"}
    # T1 and T2 share a pressure zone that every pumping station draws from.
    assert set(zone_links(ctown, "T1")) == set(zone_links(ctown, "T2"))


def test_timed_controls_and_comments_are_ignored() -> None:
    net = parse_inp(
        "[TANKS]\n T1 1 2 0 5 10 0 ; a tank\n[PUMPS]\n PU1 J1 J2 HEAD 8\n"
        "[CONTROLS]\nLINK PU1 OPEN AT TIME 6\nLINK PU1 CLOSED IF NODE T1 ABOVE 4.5\n"
    )
    assert len(net.controls) == 1
    control = net.controls[0]
    assert (control.link, control.opens, control.tank, control.below, control.level) == (
        "PU1",
        False,
        "T1",
        False,
        4.5,
    )
