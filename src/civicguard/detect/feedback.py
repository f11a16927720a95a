"""Operator feedback: true/false marks on alerts and, per detector, how often it was right.

Marks are the only labels the platform ever gets; the summary is what an analyst reads
before tuning a detector (precision among the alerts that operators judged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from civicguard.detect.model import AlertMark, Verdict
from civicguard.store.repositories import Store

#: Longest note kept with a mark, in characters.
MAX_NOTE = 2000


class MarkError(ValueError):
    """A mark cannot be recorded; ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorFeedback:
    """How operators judged one detector's alerts."""

    detector: str
    alerts: int
    marked_true: int
    marked_false: int

    @property
    def marked(self) -> int:
        """Alerts of this detector with a verdict."""
        return self.marked_true + self.marked_false

    @property
    def precision(self) -> float | None:
        """Share of judged alerts that were real; None before any was judged."""
        return self.marked_true / self.marked if self.marked else None

    def as_dict(self) -> dict[str, object]:
        """The figures as the API shows them."""
        return {
            "detector": self.detector,
            "alerts": self.alerts,
            "marked": self.marked,
            "marked_true": self.marked_true,
            "marked_false": self.marked_false,
            "precision": self.precision,
        }


def mark_alert(
    store: Store,
    alert_id: str,
    verdict: Verdict,
    *,
    by: str,
    note: str,
    now: float,
    scrub: Callable[[str], str],
) -> AlertMark:
    """Record ``by``'s verdict on an alert; the note is scrubbed of identifiers first.

    Raises :class:`MarkError` (404) for an alert that does not exist, (422) for a note that is
    too long.
    """
    alert = store.alerts.get(alert_id)
    if alert is None:
        raise MarkError(404, "not_found", f"no alert {alert_id!r}")
    if len(note) > MAX_NOTE:
        raise MarkError(
            422, "note_too_long", f"note: {len(note)} characters; the limit is {MAX_NOTE}"
        )
    mark = AlertMark(
        alert_id=alert.id,
        detector=alert.detector,
        kind=alert.kind,
        verdict=verdict,
        marked_by=by,
        marked_at=now,
        note=scrub(note) if note.strip() else "",
    )
    store.marks.add(mark)
    return mark


def summarise(
    latest: Iterable[AlertMark], alerts_by_detector: Mapping[str, int]
) -> list[DetectorFeedback]:
    """Per detector: alerts raised, and how many of them operators last marked true or false.

    >>> marks = [
    ...     AlertMark(alert_id=str(i), detector="flood", kind="k", verdict=v, marked_by="op",
    ...               marked_at=0.0)
    ...     for i, v in enumerate([Verdict.TRUE, Verdict.TRUE, Verdict.FALSE])
    ... ]
    >>> [f.as_dict() for f in summarise(marks, {"flood": 5, "silence": 2})][0]["precision"]
    0.6666666666666666
    """
    counts: dict[str, list[int]] = {d: [0, 0] for d in alerts_by_detector}
    for mark in latest:
        pair = counts.setdefault(mark.detector, [0, 0])
        pair[0 if mark.verdict is Verdict.TRUE else 1] += 1
    return [
        DetectorFeedback(
            detector=detector,
            alerts=alerts_by_detector.get(detector, 0),
            marked_true=true,
            marked_false=false,
        )
        for detector, (true, false) in sorted(counts.items())
    ]


def feedback(store: Store) -> list[DetectorFeedback]:
    """The tuning summary of every detector that raised or had marked alerts."""
    return summarise(store.marks.latest(), store.marks.alerts_by_detector())
