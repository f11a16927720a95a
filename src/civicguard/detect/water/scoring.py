"""BATADAL's score and detection report.

S = 0.5 * S_TTD + 0.5 * S_CM. S_TTD = 1 - mean over attacks of TTD / duration, where TTD is the
hours from an attack's start to its first flagged hour (the full duration if never flagged while
it lasts). S_CM = (TPR + TNR) / 2 over hours. The rules (section 3.3 and its worked example,
27 + 13 + 0 + 128 = all 168 hours) count every hour of the dataset in the confusion matrix, an
hour being UNDER ATTACK when it lies inside an attack; ATT_FLAG's -999 only says that the hour
was left unlabelled in the development data (section 3.1), it is not a class of its own.
The detection report (appendix A) has no header and one line per attack:
``id,DD-MM-YY hh,DD-MM-YY hh,devices`` with the attacked devices separated by spaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

#: The report's time format as the rules' appendix writes it ("DD-MM-YY hh").
REPORT_TIME_FORMAT = "%d-%m-%y %H"


@dataclass(frozen=True, slots=True, kw_only=True)
class AttackWindow:
    """One attack: its first and last hour (Unix seconds, inclusive)."""

    start: float
    end: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BatadalScore:
    """The competition's score and its parts."""

    s: float
    s_ttd: float
    s_cm: float
    tpr: float
    tnr: float
    #: Hours to detection per attack (duration where never detected).
    ttd: tuple[int, ...]


def time_to_detection(ts: np.ndarray, flags: np.ndarray, attack: AttackWindow) -> tuple[int, int]:
    """(hours until the first flag inside the attack, the attack's duration in hours).

    >>> ts = np.arange(10) * 3600.0
    >>> flags = np.array([0, 0, 0, 0, 1, 1, 0, 0, 0, 0], dtype=bool)
    >>> time_to_detection(ts, flags, AttackWindow(start=2 * 3600.0, end=5 * 3600.0))
    (2, 4)
    """
    inside = (ts >= attack.start) & (ts <= attack.end)
    duration = int(inside.sum())
    hits = np.flatnonzero(flags & inside)
    if len(hits) == 0:
        return duration, duration
    return int(hits[0] - np.flatnonzero(inside)[0]), duration


def batadal_score(
    ts: np.ndarray,
    flags: np.ndarray,
    attacks: Sequence[AttackWindow],
    attack_hours: np.ndarray,
    scored: np.ndarray | None = None,
) -> BatadalScore:
    """Score hourly ``flags`` against ``attacks`` (for TTD) and ``attack_hours`` (for S_CM).

    ``scored`` restricts the confusion matrix to hours whose truth is known.

    >>> ts = np.arange(6) * 3600.0
    >>> truth = np.array([0, 0, 1, 1, 0, 0], dtype=bool)
    >>> r = batadal_score(ts, truth.copy(), [AttackWindow(start=7200.0, end=10800.0)], truth)
    >>> (r.s, r.s_ttd, r.s_cm)
    (1.0, 1.0, 1.0)
    """
    flags = flags.astype(bool)
    truth = attack_hours.astype(bool)
    mask = np.ones(len(ts), dtype=bool) if scored is None else scored.astype(bool)
    ttd_dur = [time_to_detection(ts, flags, a) for a in attacks]
    ttds = tuple(t for t, _ in ttd_dur)
    s_ttd = 1.0 - float(np.mean([t / d for t, d in ttd_dur if d > 0])) if ttd_dur else 1.0
    pos, neg = truth & mask, ~truth & mask
    tpr = float((flags & pos).sum() / pos.sum()) if pos.any() else 1.0
    tnr = float((~flags & neg).sum() / neg.sum()) if neg.any() else 1.0
    s_cm = (tpr + tnr) / 2
    return BatadalScore(
        s=0.5 * s_ttd + 0.5 * s_cm, s_ttd=s_ttd, s_cm=s_cm, tpr=tpr, tnr=tnr, ttd=ttds
    )


def detected_events(ts: np.ndarray, flags: np.ndarray) -> list[AttackWindow]:
    """Runs of consecutive flagged hours, as windows.

    >>> [(w.start, w.end) for w in detected_events(np.arange(5) * 1.0, np.array([0, 1, 1, 0, 1]))]
    [(1.0, 2.0), (4.0, 4.0)]
    """
    events: list[AttackWindow] = []
    start: float | None = None
    flags = flags.astype(bool)
    for i, on in enumerate(flags):
        if on and start is None:
            start = float(ts[i])
        if start is not None and (not on or i == len(flags) - 1):
            events.append(AttackWindow(start=start, end=float(ts[i] if on else ts[i - 1])))
            start = None
    return events


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportedAttack:
    """One line of the detection report: a detected attack and the devices it implicates."""

    start: float
    end: float
    devices: tuple[str, ...] = ()


def device_of(tag: str) -> str:
    """The network component a SCADA tag reads (``F_PU7`` -> ``PU7``, ``L_T4`` -> ``T4``).

    >>> [device_of(t) for t in ("L_T4", "S_PU7", "P_J415", "F_V2")]
    ['T4', 'PU7', 'J415', 'V2']
    """
    return tag.split("_", 1)[1] if "_" in tag else tag


def report_time(ts: float) -> str:
    """A Unix time in the report's ``DD-MM-YY hh`` form (UTC)."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime(REPORT_TIME_FORMAT)


def write_report(path: Path, events: Sequence[ReportedAttack]) -> None:
    """Write a detection report as the rules' appendix specifies (no header line)."""
    lines = [
        f"{i},{report_time(e.start)},{report_time(e.end)},{' '.join(e.devices)}"
        for i, e in enumerate(events, start=1)
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
