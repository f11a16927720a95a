"""Citizen reports: problems residents report, stored only after their text is scrubbed.

The text passes the PII scrubber before anything keeps it, and a place is kept only as an H3
cell (resolution 9, about 0.1 km2). A report filed by an identified citizen is linked to their
handle and its text sealed under their key, so that erasing them shreds it. The raw text is
never logged.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from typing import Any

import h3

from civicguard.citizens.handles import SubjectIndex
from civicguard.citizens.records import ReportRepository
from civicguard.citizens.vault import SubjectVault
from civicguard.clock import Clock

#: H3 resolution of a report's place: a cell about 350 m across.
REPORT_RESOLUTION = 9
MAX_TEXT = 2000
_CATEGORY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
#: What a sealed report shows once its citizen has been erased.
ERASED = "[erased]"


class ReportError(ValueError):
    """A report that cannot be accepted; the message says which field is wrong and why."""


def report_context(report_id: str) -> str:
    """The AES-GCM associated data that binds a sealed report text to its row."""
    return f"citizen-report:{report_id}"


def default_scrub(text: str) -> str:
    """The platform's PII scrubber (imported on first use: building it takes a moment)."""
    from civicguard.privacy.scrub import default_scrubber

    scrubbed: str = default_scrubber().scrub(text).text
    return scrubbed


def report_cell(lat: float | None, lon: float | None) -> str | None:
    """The H3 cell of a report's place, or None without one; ``ReportError`` if half or bad.

    >>> report_cell(None, None) is None
    True
    """
    if lat is None and lon is None:
        return None
    if lat is None or lon is None:
        raise ReportError("lat and lon: give both or neither")
    if not (math.isfinite(lat) and -90 <= lat <= 90):
        raise ReportError(f"lat: {lat} is not a latitude (-90..90)")
    if not (math.isfinite(lon) and -180 <= lon <= 180):
        raise ReportError(f"lon: {lon} is not a longitude (-180..180)")
    return str(h3.latlng_to_cell(lat, lon, REPORT_RESOLUTION))


class CitizenReports:
    """Files and lists citizen reports."""

    def __init__(
        self,
        reports: ReportRepository,
        index: SubjectIndex,
        vault: SubjectVault,
        clock: Clock,
        scrub: Callable[[str], str] = default_scrub,
    ) -> None:
        self._reports = reports
        self._index = index
        self._vault = vault
        self._clock = clock
        self.scrub = scrub

    def file(
        self,
        text: str,
        category: str,
        *,
        lat: float | None = None,
        lon: float | None = None,
        citizen: str | None = None,
    ) -> dict[str, Any]:
        """Scrub and store a report; return it as stored (scrubbed text, cell)."""
        if not text.strip():
            raise ReportError("text: empty")
        if len(text) > MAX_TEXT:
            raise ReportError(f"text: longer than {MAX_TEXT} characters")
        if not _CATEGORY.match(category):
            raise ReportError(
                "category: 1-32 lower-case letters, digits or '_', starting with a letter"
            )
        cell = report_cell(lat, lon)
        handle = self._index.handle(citizen) if citizen is not None else None
        scrubbed = self.scrub(text)
        report_id = str(uuid.uuid4())
        row: dict[str, Any] = {
            "id": report_id,
            "received_at": self._clock.now(),
            "category": category,
            "cell": cell,
            "subject": handle,
            "text": scrubbed,
            "text_sealed": None,
        }
        if handle is None:
            self._reports.add(row)
            return self._public(row)
        row["text"] = ""
        with self._vault.sealing(handle) as box:
            row["text_sealed"] = box.seal(scrubbed.encode(), report_context(report_id))
            self._reports.add(row, conn=box.conn)
        return self._public(row)

    def list(self, *, since: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Reports, newest first, texts opened (``[erased]`` once their citizen is erased)."""
        return [self._public(r) for r in self._reports.query(since=since, limit=limit)]

    def _public(self, row: dict[str, Any]) -> dict[str, Any]:
        text = row["text"]
        sealed = row["text_sealed"]
        if sealed is not None:
            opened = self._vault.open(row["subject"], bytes(sealed), report_context(row["id"]))
            text = opened.decode() if opened is not None else ERASED
        return {
            "id": row["id"],
            "received_at": row["received_at"],
            "category": row["category"],
            "cell": row["cell"],
            "identified": row["subject"] is not None,
            "text": text,
        }
