"""Free-text scrubbing: personal identifiers in citizen reports and operator notes become tags.

Presidio's pattern recognizers (e-mail, IBAN, IP, MAC) run with a no-op NLP engine, so no
language model is loaded or downloaded; e-mail domains are checked against the public suffix
list snapshot bundled with ``tldextract``, never fetched. Our own recognizers in
:mod:`civicguard.privacy.recognizers` add licence plates of any country, phone numbers as
people write them, payment cards of every network and street addresses in eight languages;
they read the words before a candidate (plate, Kennzeichen; call, teléfono; order, factura),
which Presidio's context words cannot do without an NLP model. Person names are not detected:
no offline model is available.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NoOpNlpEngine

from civicguard.privacy.recognizers import (
    PHONE_REGIONS,
    address_recognizer,
    card_recognizer,
    email_recognizer,
    iban_recognizer,
    ip_recognizer,
    mac_recognizer,
    phone_recognizers,
    plate_recognizer,
)

#: Every entity type the scrubber can report, in the order the benchmark prints them.
ENTITY_TYPES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "IBAN_CODE",
    "CREDIT_CARD",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "LICENCE_PLATE",
    "STREET_ADDRESS",
)

_LANGUAGE = "en"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """Where a personal identifier was found: its type, span and score, never its value."""

    entity_type: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """A scrubbed text and what was taken out of it."""

    text: str
    findings: tuple[Finding, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)


def placeholder(entity_type: str) -> str:
    """The tag that stands in for an identifier of ``entity_type``.

    >>> placeholder("EMAIL_ADDRESS")
    '<EMAIL_ADDRESS>'
    """
    return f"<{entity_type}>"


class Scrubber:
    """Finds personal identifiers in free text and replaces each with a tag of its type.

    Importing Presidio takes seconds and the first call compiles every pattern, so build
    one and keep it (:func:`default_scrubber`); :meth:`scrub` may be called from any thread.

    >>> scrubber = default_scrubber()
    >>> scrubber.scrub("Mail ana.lopez@example.mx or call +52 55 1234 5678.").text
    'Mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>.'
    """

    def __init__(
        self, *, threshold: float = 0.35, phone_regions: tuple[str, ...] = PHONE_REGIONS
    ) -> None:
        recognizers: list[EntityRecognizer] = [
            email_recognizer(),
            *phone_recognizers(phone_regions),
            iban_recognizer(),
            card_recognizer(),
            ip_recognizer(),
            mac_recognizer(),
            plate_recognizer(),
            address_recognizer(),
        ]
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[_LANGUAGE])
        engine = NoOpNlpEngine(models=[{"lang_code": _LANGUAGE, "model_name": "none"}])
        self._analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=engine,
            supported_languages=[_LANGUAGE],
            default_score_threshold=threshold,
        )
        self.threshold = threshold
        self._entities = list(ENTITY_TYPES)

    def findings(self, text: str) -> list[Finding]:
        """Identifiers found in ``text``; overlapping ones are merged into one span.

        The merged span takes the type of its best-scored (then longest) member, so that
        everything any recognizer flagged is removed.
        """
        if not text or not any(ch.isalnum() for ch in text):
            return []
        raw = self._analyzer.analyze(
            text=text,
            language=_LANGUAGE,
            entities=self._entities,
            score_threshold=self.threshold,
        )
        spans = sorted(
            (
                Finding(entity_type=r.entity_type, start=r.start, end=r.end, score=r.score)
                for r in raw
                if r.end > r.start
            ),
            key=lambda f: (f.start, -f.end),
        )
        merged: list[Finding] = []
        for finding in spans:
            if merged and finding.start < merged[-1].end:
                last = merged[-1]
                best = max(last, finding, key=lambda f: (f.score, f.end - f.start))
                merged[-1] = Finding(
                    entity_type=best.entity_type,
                    start=last.start,
                    end=max(last.end, finding.end),
                    score=best.score,
                )
            else:
                merged.append(finding)
        return merged

    def scrub(self, text: str) -> Scrubbed:
        """``text`` with every identifier replaced by its tag, and the findings."""
        found = self.findings(text)
        if not found:
            return Scrubbed(text)
        parts: list[str] = []
        at = 0
        for finding in found:
            parts.append(text[at : finding.start])
            parts.append(placeholder(finding.entity_type))
            at = finding.end
        parts.append(text[at:])
        counts = Counter(f.entity_type for f in found)
        return Scrubbed("".join(parts), tuple(found), dict(counts))

    def scrub_text(self, text: str) -> str:
        """Only the scrubbed text (the shape an injected ``scrub`` callable takes)."""
        return self.scrub(text).text


@functools.cache
def default_scrubber() -> Scrubber:
    """The process-wide scrubber, built on first use."""
    return Scrubber()
