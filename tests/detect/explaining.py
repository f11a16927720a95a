"""What every alert's explanation must do: say it in words and quote the evidence's numbers."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

#: A number as explanations write it (not the digits inside a word such as ``sub-012``'s id).
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.(\d+))?")


def shown_numbers(text: str) -> list[tuple[float, int]]:
    """Every number written in ``text``, with the decimals it was written with."""
    return [(float(m.group(0)), len(m.group(1) or "")) for m in _NUMBER.finditer(text)]


def evidence_numbers(value: Any) -> Iterator[float]:
    """Every finite number in an evidence document, at any depth."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            yield float(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from evidence_numbers(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from evidence_numbers(v)


def quotes(shown: tuple[float, int], value: float) -> bool:
    """True if ``shown`` is ``value`` rounded (either sign) to the decimals it was written with."""
    number, decimals = shown
    return abs(abs(number) - abs(value)) <= 0.5 * 10.0**-decimals + 1e-9


def assert_explained(alert: dict[str, Any]) -> None:
    """The alert explains itself: names its detector, quotes its score and another number."""
    text = alert["explanation"]
    assert isinstance(text, str) and text.strip(), f"{alert['detector']}: no explanation"
    assert alert["detector"] in text, f"explanation does not name its detector: {text}"
    evidence = list(evidence_numbers(alert["evidence"]))
    shown = shown_numbers(text)
    quoting = [s for s in shown if any(quotes(s, v) for v in evidence)]
    assert len(quoting) >= 2, f"explanation quotes fewer than two numbers of {evidence}: {text}"
    score = alert["evidence"]["score"]
    assert any(quotes(s, score) for s in shown), f"explanation omits the score {score}: {text}"
