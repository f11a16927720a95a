"""The suite's own honesty: under CI a missing service or data file fails, never skips."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.services import missing_data, unavailable

TESTS = Path(__file__).resolve().parent
#: A skip written in a test module instead of going through tests/services.py.
OWN_SKIP = re.compile(r"pytest\.skip\(|mark\.skipif|importorskip\(|mark\.skip\b")


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_missing_data_file_or_service_fails(
    monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI requires it"):
        missing_data("the NAB corpus is not at /nowhere")
    with pytest.raises(pytest.fail.Exception, match="CI requires it"):
        unavailable("the nats-server binary", "nats-server")


def test_outside_ci_a_missing_data_file_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not at /nowhere"):
        missing_data("the NAB corpus is not at /nowhere")


def test_no_test_module_skips_on_its_own() -> None:
    """Every skip goes through tests/services.py, which fails instead under CI."""
    offenders = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.name not in {"services.py", "test_services.py"}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OWN_SKIP.search(line)
    ]
    assert offenders == []
