"""``bench surge``: the simulator's build-ups, the forecast's error and the alert's lead."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console
from typer.testing import CliRunner

from civicguard.benchmarks.surge import HorizonError, run_surge_benchmark
from civicguard.cli import app
from civicguard.respond.streets import synthetic_grid


def test_horizon_error_is_mean_absolute_and_percentage() -> None:
    errors = HorizonError()
    errors.add(np.array([110.0, 90.0]), np.array([100.0, 100.0]))
    errors.add(np.array([50.0]), np.array([200.0]))
    assert errors.mae == (10 + 10 + 150) / 3
    assert errors.mape == (10 + 10 + 75) / 3


def test_two_hours_of_build_ups_are_forecast_and_warned() -> None:
    out = io.StringIO()
    report = run_surge_benchmark(
        seeds=(2,), hours=2.5, console=Console(file=out, width=240), streets=synthetic_grid()
    )
    assert report.build_ups >= 3 and report.simulated_s == 2.5 * 3600
    holt, naive = report.errors["holt", "build-ups"], report.errors["naive", "build-ups"]
    assert all(len(h.absolute) > 100 for h in holt)
    assert holt[0].mae < naive[0].mae  # a minute ahead, the trend beats "as many as now"
    assert report.crossings >= 1 and report.warned == report.crossings
    assert all(lead > 0 for lead in report.leads_s)
    text = out.getvalue()
    assert "Surge forecast error" in text and "crossings warned ahead" in text


def test_the_command_refuses_bad_seeds() -> None:
    result = CliRunner().invoke(app, ["bench", "surge", "--seeds", "one,two"])
    assert result.exit_code == 2
    assert "--seeds must be integers" in result.output
