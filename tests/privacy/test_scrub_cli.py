"""``civicguard scrub`` and ``civicguard bench pii`` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).with_name("civicguard"))
ENV = os.environ | {"COLUMNS": "120"}


def test_scrub_writes_one_scrubbed_line_per_input_line() -> None:
    lines = [
        "Plate PRS-312-B seen at Calle Madero 125.",
        "",
        "nothing personal: 14 cars at 08:15",
        "mail ana.lopez@example.mx\tor call +52 449 123 4567",
        "",
    ]
    done = subprocess.run(
        [CLI, "scrub"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
        check=True,
    )
    assert done.stdout.split("\n")[:-1] == [
        "Plate <LICENCE_PLATE> seen at <STREET_ADDRESS>.",
        "",
        "nothing personal: 14 cars at 08:15",
        "mail <EMAIL_ADDRESS>\tor call <PHONE_NUMBER>",
        "",
    ]
    assert done.stdout.endswith("\n")


def test_scrub_answers_each_line_before_the_next_one_arrives() -> None:
    with subprocess.Popen(
        [CLI, "scrub"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        for line, expected in (
            ("call 06-12345678 please", "call <PHONE_NUMBER> please"),
            ("kenteken GX-123-B", "kenteken <LICENCE_PLATE>"),
        ):
            process.stdin.write(line + "\n")
            process.stdin.flush()
            assert process.stdout.readline() == expected + "\n"  # stdin is still open
        process.stdin.close()
        assert process.wait(timeout=60) == 0


def test_bench_pii_prints_scores_per_set_split_and_entity_and_speed(tmp_path: Path) -> None:
    hand = tmp_path / "hand.jsonl"
    hand.write_text(
        json.dumps(
            {
                "text": "mail ana@example.mx now",
                "split": "dev",
                "entities": [{"type": "EMAIL_ADDRESS", "start": 5, "end": 19}],
            }
        )
        + "\n"
    )
    made = tmp_path / "made.jsonl"
    rows = [
        # Found: the e-mail. Missed: "x7" labelled as a plate, which nothing can tell.
        {
            "text": "write to bo@example.nl or x7",
            "split": "test",
            "entities": [
                {"type": "EMAIL_ADDRESS", "start": 9, "end": 22},
                {"type": "LICENCE_PLATE", "start": 26, "end": 28},
            ],
        },
        {"text": "14 cars at 08:15", "split": "test", "entities": []},
    ]
    made.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = subprocess.run(
        [CLI, "bench", "pii", "--data", str(hand), "--data", str(made), "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
        check=True,
    )
    out = done.stdout
    assert "hand dev (tuned on, 1 sentences), overlap-span matching" in out
    assert "made test (held out, 2 sentences), exact-span matching" in out
    summary = out[out.index("pattern totals") :].splitlines()
    rows_by_set = {
        line.split()[0]: line.split()
        for line in summary
        if line.split()[:1] in (["hand"], ["made"])
    }
    # By hand: hand dev 1 of 1 found, 1 flagged, right; made test 1 of 2 found, 1 flagged,
    # right: precision 1, recall 0.5, F2 = 5 * 1 * 0.5 / (4 * 1 + 0.5) = 0.556.
    assert rows_by_set["hand"][-3:] == ["1.000", "1.000", "1.000"]
    assert rows_by_set["made"][-3:] == ["1.000", "0.500", "0.556"]
    email_row = next(line for line in out.splitlines() if "EMAIL_ADDRESS" in line)
    assert email_row.split()[1:] == ["1", "1", "1", "1.000", "1.000", "1.000"]
    assert "lines/s" in out and "ms/line" in out


def test_bench_pii_names_the_line_of_a_malformed_set(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(
        '{"text": "ab", "entities": [{"type": "PHONE_NUMBER", "start": 0, "end": 5}]}\n'
    )
    done = subprocess.run(
        [CLI, "bench", "pii", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
        check=False,
    )
    assert done.returncode == 2
    message = " ".join(done.stdout.split())  # rich wraps long lines
    assert "bad.jsonl:1: span 0..5 is outside the text (2 characters)" in message
