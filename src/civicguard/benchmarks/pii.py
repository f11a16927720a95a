"""``civicguard bench pii``: precision, recall and F2 of the free-text scrubber per entity type.

The labelled set is JSON lines, ``{"text", "entities": [{"type", "start", "end"}], "split"}``.
A finding counts for a labelled span of the same type when the two overlap (``overlap``
matching, what decides whether the identifier is gone) and, in a second table, only when the
spans are identical (``exact``). F2 weighs recall four times as much as precision: a missed
identifier is a leak, a false alarm is a lost word.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from civicguard.privacy.scrub import ENTITY_TYPES, Finding, Scrubber

#: Labelled types that no recognizer covers (no offline name model): shown, not totalled.
UNDETECTED_TYPES: tuple[str, ...] = ("PERSON",)
KNOWN_TYPES: tuple[str, ...] = ENTITY_TYPES + UNDETECTED_TYPES


@dataclass(frozen=True, slots=True)
class Span:
    """A labelled identifier: its type and where it is."""

    type: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Sentence:
    """One labelled sentence of the set."""

    text: str
    entities: tuple[Span, ...]
    split: str


class DatasetError(ValueError):
    """The labelled set is malformed; the message names the file, line and problem."""


def load_sentences(path: Path) -> list[Sentence]:
    """Read and check the labelled set: every span inside its text, every type known."""
    out: list[Sentence] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
            text = record["text"]
            spans = tuple(
                Span(str(e["type"]), int(e["start"]), int(e["end"])) for e in record["entities"]
            )
            split = str(record.get("split", "dev"))
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{where}: not a labelled sentence ({exc})") from exc
        if not isinstance(text, str):
            raise DatasetError(f"{where}: 'text' must be a string")
        for span in spans:
            if span.type not in KNOWN_TYPES:
                raise DatasetError(f"{where}: unknown entity type {span.type!r}")
            if not 0 <= span.start < span.end <= len(text):
                raise DatasetError(
                    f"{where}: span {span.start}..{span.end} is outside the text "
                    f"({len(text)} characters)"
                )
        out.append(Sentence(text, spans, split))
    return out


@dataclass(slots=True)
class Tally:
    """Counts for one entity type: labelled spans found, findings that were right."""

    support: int = 0
    found: int = 0
    predicted: int = 0
    correct: int = 0

    @property
    def precision(self) -> float:
        """Share of findings that match a labelled span (1.0 when nothing was predicted)."""
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        """Share of labelled spans that a finding matches (1.0 when there are none)."""
        return self.found / self.support if self.support else 1.0

    @property
    def f2(self) -> float:
        """F-beta with beta 2: recall counts four times as much as precision.

        >>> round(Tally(support=10, found=9, predicted=10, correct=9).f2, 4)
        0.9
        """
        p, r = self.precision, self.recall
        return 5 * p * r / (4 * p + r) if p + r else 0.0

    def add(self, other: Tally) -> None:
        """Add ``other``'s counts to these."""
        self.support += other.support
        self.found += other.found
        self.predicted += other.predicted
        self.correct += other.correct


@dataclass(slots=True)
class Score:
    """Per-type tallies of one split under one matching rule, and leaked characters."""

    by_type: dict[str, Tally] = field(default_factory=dict)
    pii_chars: int = 0
    leaked_chars: int = 0

    def tally(self, entity_type: str) -> Tally:
        """The tally of ``entity_type`` (created empty)."""
        return self.by_type.setdefault(entity_type, Tally())

    def total(self, types: Iterable[str] = ENTITY_TYPES) -> Tally:
        """The micro-averaged tally over ``types``."""
        out = Tally()
        for entity_type in types:
            if entity_type in self.by_type:
                out.add(self.by_type[entity_type])
        return out


def _overlaps(a: Span | Finding, b: Span | Finding) -> bool:
    return a.start < b.end and b.start < a.end


def _same(a: Span | Finding, b: Span | Finding) -> bool:
    return a.start == b.start and a.end == b.end


def score_sentence(
    sentence: Sentence, findings: Sequence[Finding], overlap: Score, exact: Score
) -> None:
    """Add one sentence's outcome to the overlap and exact scores."""
    for score, match in ((overlap, _overlaps), (exact, _same)):
        for entity_type in {s.type for s in sentence.entities} | {f.entity_type for f in findings}:
            gold = [s for s in sentence.entities if s.type == entity_type]
            pred = [f for f in findings if f.entity_type == entity_type]
            tally = score.tally(entity_type)
            tally.support += len(gold)
            tally.predicted += len(pred)
            tally.found += sum(any(match(g, p) for p in pred) for g in gold)
            tally.correct += sum(any(match(p, g) for g in gold) for p in pred)
    covered = [False] * len(sentence.text)
    for f in findings:
        covered[f.start : f.end] = [True] * (f.end - f.start)
    for span in sentence.entities:
        if span.type in UNDETECTED_TYPES:
            continue
        overlap.pii_chars += span.end - span.start
        overlap.leaked_chars += covered[span.start : span.end].count(False)


@dataclass(slots=True)
class PiiReport:
    """Scores per split (``overlap`` and ``exact``) and speed."""

    overlap: dict[str, Score] = field(default_factory=dict)
    exact: dict[str, Score] = field(default_factory=dict)
    lines: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    build_seconds: float = 0.0


def evaluate(sentences: Sequence[Sentence], find: Callable[[str], Sequence[Finding]]) -> PiiReport:
    """Run ``find`` over every sentence and score it per split."""
    report = PiiReport()
    started = time.perf_counter()
    for sentence in sentences:
        findings = find(sentence.text)
        score_sentence(
            sentence,
            findings,
            report.overlap.setdefault(sentence.split, Score()),
            report.exact.setdefault(sentence.split, Score()),
        )
    report.seconds = time.perf_counter() - started
    report.lines = len(sentences)
    return report


def _table(title: str, score: Score) -> Table:
    table = Table(
        "entity",
        "support",
        "found",
        "flagged",
        "precision",
        "recall",
        "F2",
        title=title,
        box=box.SIMPLE_HEAD,
    )
    for entity_type in KNOWN_TYPES:
        tally = score.by_type.get(entity_type)
        if tally is None:
            continue
        if entity_type in UNDETECTED_TYPES:
            table.add_row(entity_type, str(tally.support), "-", "-", "-", "-", "-")
            continue
        table.add_row(
            entity_type,
            str(tally.support),
            str(tally.found),
            str(tally.predicted),
            f"{tally.precision:.3f}",
            f"{tally.recall:.3f}",
            f"{tally.f2:.3f}",
        )
    total = score.total()
    table.add_row(
        "pattern total",
        str(total.support),
        str(total.found),
        str(total.predicted),
        f"{total.precision:.3f}",
        f"{total.recall:.3f}",
        f"{total.f2:.3f}",
        style="bold",
    )
    return table


def _summary(report: PiiReport, sizes: dict[str, int]) -> Table:
    """One row per set and split: the overlap-matching totals, what the README quotes."""
    table = Table(
        "set",
        "split",
        "sentences",
        "precision",
        "recall",
        "F2",
        title="pattern totals, overlap-span matching",
        box=box.SIMPLE_HEAD,
    )
    for key, score in report.overlap.items():
        name, split = key.rsplit(" ", 1)
        total = score.total()
        table.add_row(
            name,
            "dev (tuned on)" if split == "dev" else f"{split} (held out)",
            str(sizes[key]),
            f"{total.precision:.3f}",
            f"{total.recall:.3f}",
            f"{total.f2:.3f}",
        )
    return table


def run_pii_benchmark(
    data: Path | Sequence[Path], *, repeat: int = 5, console: Console | None = None
) -> PiiReport:
    """Score the default scrubber on each labelled set, print the tables and the speed.

    Each set's splits are scored apart (``"<file stem> <split>"``), so that the hand-written
    sentences and the generated ones are never averaged into one figure.
    """
    console = console or Console()
    paths = [data] if isinstance(data, Path) else list(data)
    sentences = [
        dataclasses.replace(s, split=f"{path.stem} {s.split}")
        for path in paths
        for s in load_sentences(path)
    ]
    sentences.sort(key=lambda s: (s.split.rsplit(" ", 1)[1] != "dev",))
    started = time.perf_counter()
    scrubber = Scrubber()
    build = time.perf_counter() - started
    report = evaluate(sentences, scrubber.findings)
    report.build_seconds = build
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        for sentence in sentences:
            scrubber.findings(sentence.text)
    report.seconds = time.perf_counter() - started
    report.cpu_seconds = time.process_time() - cpu
    report.lines = repeat * len(sentences)
    sizes = Counter(s.split for s in sentences)
    for key in report.overlap:
        note = "tuned on" if key.endswith(" dev") else "held out"
        for rule, scores in (("overlap", report.overlap), ("exact", report.exact)):
            console.print(
                _table(f"{key} ({note}, {sizes[key]} sentences), {rule}-span matching", scores[key])
            )
        leaked = report.overlap[key]
        console.print(
            f"{key}: {leaked.leaked_chars} of {leaked.pii_chars} labelled "
            "identifier characters left in clear"
        )
    console.print(_summary(report, sizes))
    console.print(
        f"{', '.join(UNDETECTED_TYPES)}: labelled but not detected, no offline "
        "name model is available; not in the totals"
    )
    per_line = report.seconds / report.lines if report.lines else 0.0
    cpu_per_line = report.cpu_seconds / report.lines if report.lines else 0.0
    # CPU time beside the wall clock: on a shared machine the wall clock measures the others.
    console.print(
        f"engine built in {report.build_seconds:.2f} s; "
        f"{report.lines} lines in {report.seconds:.2f} s: "
        f"{report.lines / report.seconds:,.0f} lines/s, {per_line * 1000:.2f} ms/line "
        f"({cpu_per_line * 1000:.2f} ms/line of CPU)"
    )
    return report
