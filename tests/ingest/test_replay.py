"""Replaying recorded files: CSV and JSON lines, with bad lines kept as dead letters."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
from rich.console import Console

from civicguard.ingest.replay import replay_file
from civicguard.platform import Platform


def drain(platform: Platform) -> None:
    """Let the processor store everything ingest published."""
    while platform.processor.run_once(timeout=0.01):
        pass


def test_csv_with_one_column_per_field(
    platform: Platform, provisioned: dict[str, str], tmp_path: Path
) -> None:
    now = platform.clock.now()
    path = tmp_path / "substations.csv"
    path.write_text(
        "device,seq,ts,voltage,frequency,load\n"
        f"sub-01,1,{now},11.0,50.0,12.0\n"
        f"sub-01,2,{now + 1},11.1,50.01,12.2\n"
        f"sub-02,1,{now},10.9,49.99,8.0\n"
        f"sub-01,2,{now + 1},11.1,50.01,12.2\n"  # a retransmission: stored once
        f"sub-01,3,{now + 2},eleven,50.0,12.0\n"  # line 6: not a number
        f"sub-01,4,{now + 3},95.0,50.0,12.0\n"  # line 7: outside the physical range
        f"ghost,1,{now},11.0,50.0,12.0\n"  # line 8: never provisioned
    )
    out = io.StringIO()
    report = replay_file(platform, path, console=Console(file=out, force_terminal=False, width=100))
    drain(platform)

    assert (report.accepted, report.duplicates, report.rejected) == (3, 1, 3)
    assert report.reasons == {"wrong_type": 1, "out_of_range": 1, "unknown_device": 1}
    assert platform.store.readings.count() == 3
    letters = {d["reason"]: d for d in platform.store.dead_letters.query()}
    assert letters["wrong_type"]["detail"].startswith("line 6: values.voltage")
    assert letters["unknown_device"]["detail"].startswith("line 8:")
    assert any(p.startswith("line 7: out_of_range") for p in report.problems)
    assert "3 accepted, 1 duplicates, 3 rejected" in report.summary()
    assert "replaying substations.csv" in out.getvalue()


def test_csv_with_a_values_column_of_json(
    platform: Platform, provisioned: dict[str, str], tmp_path: Path
) -> None:
    now = platform.clock.now()
    path = tmp_path / "anpr.csv"
    reading = orjson.dumps({"plate": "QWE-1234", "lane": 1, "speed": 50.0, "vehicle_class": "bus"})
    quoted = '"' + reading.decode().replace('"', '""') + '"'
    path.write_text(f"device,seq,ts,values\nanpr-01,1,{now},{quoted}\nanpr-01,2,{now},{{oops\n")
    report = replay_file(platform, path)
    drain(platform)

    assert (report.accepted, report.rejected) == (1, 1)
    assert report.reasons == {"malformed_json": 1}
    (row,) = platform.store.readings.query(device_id="anpr-01")
    assert row["values"]["plate"].startswith("ps_")
    (letter,) = platform.store.dead_letters.query()
    assert letter["detail"].startswith("line 3: values: not valid JSON")


def test_json_lines_with_bad_lines(
    platform: Platform, provisioned: dict[str, str], tmp_path: Path
) -> None:
    now = platform.clock.now()
    good = {
        "device": "anpr-01",
        "seq": 1,
        "ts": now,
        "values": {"plate": "RAW-777", "lane": 3, "speed": 20.0, "vehicle_class": "truck"},
    }
    lines = [
        orjson.dumps(good).decode(),
        '{"device": "anpr-01", "seq": 2,',  # line 2: cut short
        "[1, 2]",  # line 3: not a reading
        orjson.dumps({**good, "seq": 3, "values": {**good["values"], "lane": "left"}}).decode(),
        "",
        orjson.dumps(
            {
                **good,
                "device": "sub-01",
                "seq": 9,
                "ts": "2026-09-19T12:00:00+00:00",
                "values": {"voltage": 11.0, "frequency": 50.0, "load": 3.0},
            }
        ).decode(),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = replay_file(platform, path)
    drain(platform)

    assert report.accepted == 1
    assert report.reasons == {
        "malformed_json": 1,
        "not_an_object": 1,
        "wrong_type": 1,
        "timestamp_too_old": 1,
    }
    details = sorted(d["detail"] for d in platform.store.dead_letters.query())
    assert details[0].startswith("line 2: not valid JSON")
    assert details[1].startswith("line 3:")
    assert any(p.startswith("line 4: wrong_type: values.lane") for p in report.problems)
    assert any(p.startswith("line 6: timestamp_too_old") for p in report.problems)
    db = Path(platform.settings.data_dir) / "civicguard.db"
    platform.close()
    assert b"RAW-777" not in db.read_bytes()
