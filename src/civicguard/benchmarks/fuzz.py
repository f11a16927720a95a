"""``civicguard bench fuzz``: hostile input against the parsers that read what strangers send.

Three targets, each fed inputs that Hypothesis generates (raw bytes, and inputs shaped like
the real thing with wrong, extreme and missing parts, since those reach deeper):

* ``decode``: the ingest decoder, ``Decoder.parse_body`` then ``Decoder.decode``, as HTTP and
  MQTT bodies reach it. Its own documented error is ``ReadingError`` from ``parse_body``;
  ``decode`` itself refuses readings and never raises.
* ``replay``: ``replay_file`` on a CSV or JSON-lines file. Unreadable lines become refusals
  in its report; it documents no exception.
* ``catalog``: ``load_catalog`` on a YAML file. Its documented error is ``CatalogError``,
  naming file, path and problem.

Anything else a target raises is a finding. Findings are told apart by exception type and
the place it was raised; the first input that raised each is written to ``--out`` (a
``.bin`` file per finding and ``findings.json``), so that it can be replayed by hand.

Inputs are generated from ``--seed``: the same seed and count give the same run.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parsers are imported late: atheris instruments them as they load
    from rich.console import Console

    from civicguard.catalog.model import Catalog, FieldSpec, FieldType
    from civicguard.ingest.decode import Decoder
    from civicguard.ingest.model import Device, IngestResult

#: When every generated reading is received: timestamps near it are in the accepted window.
NOW = 1_790_000_000.0

#: Share of ``--inputs`` each target gets, by speed: thousands of bodies a second are decoded,
#: hundreds of files replayed, and about a hundred catalogs read (YAML in pure Python).
SHARES = {"decode": 0.8, "replay": 0.15, "catalog": 0.05}

#: Inputs per Hypothesis run; each run has its own seed derived from ``--seed``.
ROUND = 2_000

#: Inputs Hypothesis makes per target as atheris's seed corpus.
CORPUS = 150


@dataclass
class Finding:
    """One distinct undocumented exception and the first input that raised it."""

    kind: str
    where: str
    message: str
    reproducer: bytes
    count: int = 1


@dataclass
class TargetReport:
    """What one target went through."""

    name: str
    inputs: int = 0
    seconds: float = 0.0
    engine: str = ""
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)

    def saw(self, exc: BaseException, data: bytes) -> bool:
        """Count ``exc``; keep it with ``data`` if it is the first of its kind and place (True)."""
        where = _raised_at(exc)
        key = (type(exc).__name__, where)
        known = self.findings.get(key)
        if known is not None:
            known.count += 1
            return False
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        self.findings[key] = Finding(type(exc).__name__, where, message, data)
        return True

    def to_json(self) -> dict[str, Any]:
        """The report as the child process hands it over."""
        return {
            "inputs": self.inputs,
            "findings": [
                {**vars(f), "reproducer": f.reproducer.hex()} for f in self.findings.values()
            ],
        }

    @classmethod
    def from_json(cls, name: str, doc: dict[str, Any]) -> TargetReport:
        """A report a child process handed over."""
        report = cls(name, inputs=int(doc["inputs"]))
        for f in doc["findings"]:
            finding = Finding(**{**f, "reproducer": bytes.fromhex(f["reproducer"])})
            report.findings[(finding.kind, finding.where)] = finding
        return report


def _raised_at(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of the traceback (where it was raised)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    parts = Path(last.filename).parts
    short = "/".join(parts[parts.index("civicguard") :]) if "civicguard" in parts else last.filename
    return f"{short}:{last.lineno}"


@dataclass(frozen=True)
class Target:
    """A parser under test: how to run it on one input, and the errors it documents."""

    name: str
    run: Callable[[bytes], object]
    documented: tuple[type[BaseException], ...]
    strategy: Any


# --- the decoder ----------------------------------------------------------------------------


def _devices(catalog: Catalog) -> list[Device]:
    from civicguard.ingest.model import Device

    return [
        Device(id=f"dev-{i}", stream=s.name, lat=21.88, lon=-102.29, district="Centro")
        for i, s in enumerate(catalog.streams)
    ]


def decode_target(catalog: Catalog) -> Target:
    """``Decoder.parse_body`` then ``Decoder.decode``, as a device's body reaches them."""
    import hypothesis.strategies as st

    from civicguard.ingest.decode import Decoder, ReadingError
    from civicguard.ingest.model import Transport

    decoder = Decoder(catalog)
    devices = _devices(catalog)

    def run(data: bytes) -> None:
        # The first byte picks the sending device, the rest is its body.
        device = devices[data[0] % len(devices)] if data else devices[0]
        items = decoder.parse_body(data[1:])
        decoder.decode(device, items, transport=Transport.HTTP, received_at=NOW)

    shaped = _bodies(catalog, devices)
    raw = st.binary(max_size=300)
    return Target("decode", run, (ReadingError,), st.one_of(shaped, shaped, raw))


def _dump(doc: object) -> bytes:
    """JSON text of ``doc``, NaN and Infinity included (they are not JSON, so they must fail)."""
    try:
        return json.dumps(doc, allow_nan=True).encode()
    except ValueError:  # an integer too long to print: send its truncated text instead
        return b"[1" + b"9" * 5000 + b"]"


@functools.cache
def _edges() -> Any:
    """Integers at the edges of the machine's types."""
    import hypothesis.strategies as st

    return st.sampled_from(
        [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63), -(2**63) - 1, 10**30]
    )


@functools.cache
def _scalars() -> Any:
    import hypothesis.strategies as st

    return st.one_of(
        st.none(),
        st.booleans(),
        _edges(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
        st.sampled_from(["", "1e400", "-0", "2026-12-07T23:00:00+00:00", "2026-12-07T23:00:00"]),
    )


@functools.cache
def _json_values() -> Any:
    import hypothesis.strategies as st

    return st.recursive(
        _scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=8,
    )


@functools.cache
def _good_value(kind: FieldType) -> Any:
    """A value of the field's type (its range and choices are the decoder's to check)."""
    import hypothesis.strategies as st

    from civicguard.catalog.model import FieldType

    return {
        FieldType.NUMBER: st.floats(-1e6, 1e6),
        FieldType.INTEGER: st.integers(-1000, 10**6),
        FieldType.BOOLEAN: st.booleans(),
        FieldType.STRING: st.text(max_size=20),
        FieldType.STRING_LIST: st.lists(st.text(max_size=17), max_size=5),
    }[kind]


def _valid(spec: FieldSpec) -> Any:
    """A value the field accepts: in its range, one of its choices."""
    import hypothesis.strategies as st

    from civicguard.catalog.model import FieldType

    if spec.choices:
        return st.sampled_from(spec.choices)
    if spec.range is not None and spec.type is FieldType.NUMBER:
        return st.floats(*spec.range)
    if spec.range is not None and spec.type is FieldType.INTEGER:
        return st.integers(math.ceil(spec.range[0]), math.floor(spec.range[1]))
    if spec.type is FieldType.STRING:
        return st.text(min_size=1, max_size=min(spec.max_length, 20))
    return _good_value(spec.type)


@functools.cache
def _field_value(kind: FieldType) -> Any:
    import hypothesis.strategies as st

    good = _good_value(kind)
    return st.one_of(good, good, _json_values())


@functools.cache
def _timestamps() -> Any:
    import hypothesis.strategies as st

    return st.one_of(
        st.floats(NOW - 90_000, NOW + 600),
        st.floats(NOW - 90_000, NOW + 600),
        st.integers(int(NOW) - 90_000, int(NOW) + 600),
        st.floats(allow_nan=True, allow_infinity=True),
        st.datetimes(timezones=st.timezones() | st.none()).map(lambda d: d.isoformat()),
        _scalars(),
    )


def _readings(catalog: Catalog, devices: list[Device]) -> list[Any]:
    """Readings shaped like the wire format, every part of which may be wrong or missing."""
    import hypothesis.strategies as st

    # Half are readings a device could send (seq at the edges of int64 included), so that
    # whole readings get past the envelope to the columns, where numbers meet NumPy; half have
    # any part wrong, missing or of another type.
    def for_stream(stream_index: int) -> Any:
        stream = catalog.streams[stream_index]
        good = {f.name: _valid(f) for f in stream.fields}
        required = {f.name for f in stream.fields if f.required}
        clean = st.fixed_dictionaries(
            {
                "seq": st.one_of(st.integers(0, 10**6), _edges()),
                "ts": st.floats(NOW - 3_600, NOW + 60),
                "values": st.fixed_dictionaries(
                    {n: v for n, v in good.items() if n in required},
                    optional={n: v for n, v in good.items() if n not in required},
                ),
            },
            optional={
                "device": st.just(devices[stream_index].id),
                "stream": st.just(stream.name),
                "position": st.fixed_dictionaries(
                    {"lat": st.floats(-90, 90), "lon": st.floats(-180, 180)}
                ),
            },
        )
        values = st.one_of(
            st.fixed_dictionaries(
                {}, optional={f.name: _field_value(f.type) for f in stream.fields}
            ),
            _json_values(),
        )
        hostile = st.fixed_dictionaries(
            {"seq": st.one_of(st.integers(0, 10**6), _edges(), _scalars()), "ts": _timestamps()},
            optional={
                "values": values,
                "device": st.sampled_from([devices[stream_index].id, "other"]) | _scalars(),
                "stream": st.sampled_from([stream.name, "water.tank", "nope"]) | _scalars(),
                "position": st.fixed_dictionaries({"lat": _scalars(), "lon": _scalars()})
                | _json_values(),
                "location": _json_values(),
                "extra": _json_values(),
            },
        )
        return st.one_of(clean, hostile)

    # Built once per stream: strategies made inside a draw (flatmap) cost more than the parsers.
    return [for_stream(i) for i in range(len(catalog.streams))]


def _bodies(catalog: Catalog, devices: list[Device]) -> Any:
    """A device's index (first byte) and a body of its stream's readings, or of anything."""
    import hypothesis.strategies as st

    def body(index: int, reading: Any) -> Any:
        doc = st.one_of(reading, st.lists(reading, max_size=6), _json_values())
        return doc.map(lambda d: bytes([index]) + _dump(d))

    return st.one_of(*(body(i, r) for i, r in enumerate(_readings(catalog, devices))))


# --- the replay reader ----------------------------------------------------------------------


class _ReplayRegistry:
    """The registry's one look-up replay makes: these devices, or ``unknown_device``."""

    def __init__(self, devices: list[Device]) -> None:
        self.by_id = {d.id: d for d in devices}

    def by_broker_identity(self, device_id: str) -> Device:
        from civicguard.ingest.model import Reason
        from civicguard.ingest.registry import AuthError

        device = self.by_id.get(device_id)
        if device is None:
            raise AuthError(Reason.UNKNOWN_DEVICE, "no such device")
        return device


class _ReplayIngest:
    """The ingest service's two entry points replay calls, with the real decoder behind them."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder

    def refuse(self, *_: object, **__: object) -> None:
        return None

    def submit_items(self, device: Device, items: list[Any], transport: Any) -> IngestResult:
        return self.decoder.decode(device, items, transport=transport, received_at=NOW)


def replay_target(catalog: Catalog, workdir: Path) -> Target:
    """``replay_file`` on a CSV or JSON-lines file (the platform replaced by the decoder)."""
    import hypothesis.strategies as st

    from civicguard.ingest.decode import Decoder
    from civicguard.ingest.replay import replay_file

    devices = _devices(catalog)
    platform = SimpleNamespace(
        catalog=catalog,
        registry=_ReplayRegistry(devices),
        ingest=_ReplayIngest(Decoder(catalog)),
    )
    files = {0: workdir / "replay.csv", 1: workdir / "replay.jsonl", 2: workdir / "replay.txt"}

    def run(data: bytes) -> None:
        # The first byte picks the file's name (CSV, JSON lines, or sniffed), the rest is it.
        path = files[data[0] % 3] if data else files[2]
        path.write_bytes(data[1:])
        replay_file(platform, path)  # type: ignore[arg-type]

    ids = st.sampled_from([d.id for d in devices] + ["", "ghost"])
    names = sorted({f.name for s in catalog.streams for f in s.fields})
    columns = st.lists(
        st.sampled_from(["device", "seq", "ts", "stream", "values", *names]) | st.text(max_size=6),
        min_size=1,
        max_size=8,
    )
    cell = st.one_of(
        ids,
        st.integers(-5, 10**6).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["true", "no", '["a"]', "{}", "1e400", "2026-12-07T23:00:00+00:00"]),
        _json_values().map(lambda v: _dump(v).decode()),
        st.text(max_size=12),
    )

    def csv_text(header: list[str], rows: list[list[str]], sep: str) -> bytes:
        def quote(text: str) -> str:
            return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text

        lines = [",".join(map(quote, header)), *(",".join(map(quote, r)) for r in rows)]
        return sep.join(lines).encode("utf-8", "surrogatepass")

    csv_file = st.builds(
        csv_text,
        columns,
        st.lists(st.lists(cell, max_size=9), max_size=5),
        st.sampled_from(["\n", "\r\n", "\r"]),
    ).map(lambda text: b"\x00" + text)
    line = st.one_of(
        st.builds(
            lambda r, d: _dump({**r, "device": d}), st.one_of(*_readings(catalog, devices)), ids
        ),
        _json_values().map(_dump),
        st.binary(max_size=40),
    )
    jsonl_file = st.lists(line, max_size=6).map(lambda lines: b"\x01" + b"\n".join(lines))
    raw = st.binary(max_size=300)
    return Target("replay", run, (), st.one_of(csv_file, jsonl_file, raw))


# --- the catalog loader ---------------------------------------------------------------------


def _small_catalog_doc() -> dict[str, Any]:
    """The demo catalog cut to a few streams and one zone: still valid, quicker to read."""
    from importlib import resources

    import yaml

    text = resources.files("civicguard.catalog").joinpath("demo_city.yaml").read_text("utf-8")
    doc: dict[str, Any] = yaml.safe_load(text)
    keep = ("access.door", "traffic.anpr", "citizen.safety_app")
    doc["streams"] = {name: doc["streams"][name] for name in keep}
    doc["zones"] = dict(list(doc["zones"].items())[:1])
    return doc


def _paths(doc: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``doc``, containers included."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


def _edited(doc: dict[str, Any], edits: list[tuple[tuple[Any, ...], Any, bool]]) -> object:
    """``doc`` with each (path, value, delete) edit applied to a deep copy."""
    copy: Any = json.loads(json.dumps(doc))
    for path, value, delete in edits:
        if not path:
            copy = value
            continue
        parent = copy
        try:
            for key in path[:-1]:
                parent = parent[key]
            if delete and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    return copy


def catalog_target(workdir: Path) -> Target:
    """``load_catalog`` on a YAML file: a valid catalog with parts replaced, or any text."""
    import hypothesis.strategies as st
    import yaml

    from civicguard.catalog.loader import CatalogError, load_catalog

    doc = _small_catalog_doc()
    paths = _paths(doc)
    path = workdir / "catalog.yaml"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        load_catalog(path)

    durations = st.sampled_from(["0s", "1s", "30d", "1.5h", "-1d", "5 m", "1e9d", "ms", "0.0001ms"])
    value = st.one_of(durations, _json_values())
    edit = st.tuples(st.sampled_from(paths), value, st.booleans())

    def dump(document: object) -> bytes:
        return yaml.safe_dump(document, default_flow_style=True, width=10**6).encode()

    def dumped(edits: list[tuple[tuple[Any, ...], Any, bool]]) -> bytes:
        document = _edited(doc, edits)
        try:
            return dump(document)
        except (yaml.YAMLError, ValueError, OverflowError):
            return dump(doc)

    shaped = st.lists(edit, min_size=1, max_size=4).map(dumped)
    texts = st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from(
            [b"a: &x [*x]", b"!!python/object:os.system {}", b"{a: 1, a: 2}", b"- " * 200]
        ),
    )
    return Target("catalog", run, (CatalogError,), st.one_of(shaped, shaped, shaped, texts))


# --- running them ---------------------------------------------------------------------------


def make_target(name: str, catalog: Catalog, workdir: Path) -> Target:
    """The target called ``name`` (one of :data:`SHARES`), its files under ``workdir``."""
    if name == "decode":
        return decode_target(catalog)
    if name == "replay":
        return replay_target(catalog, workdir)
    return catalog_target(workdir)


def _given(strategy: Any, examples: int, seed: int) -> Callable[[Callable[[bytes], None]], Any]:
    """Hypothesis's ``given`` for ``examples`` inputs from ``seed``: no shrinking, no database."""
    import hypothesis
    from hypothesis import HealthCheck, Phase

    def wrap(test: Callable[[bytes], None]) -> Any:
        settings = hypothesis.settings(
            max_examples=examples,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        )
        given: Any = hypothesis.given(strategy)
        return settings(hypothesis.seed(seed)(given(test)))

    return wrap


def _check(target: Target, report: TargetReport, data: bytes) -> bool:
    """Run one input; True if it raised an exception not seen before."""
    report.inputs += 1
    try:
        target.run(data)
    except target.documented:
        return False
    except Exception as exc:  # every exception the target does not document is a finding
        return report.saw(exc, data)
    return False


def run_with_hypothesis(target: Target, inputs: int, seed: int) -> TargetReport:
    """Feed ``target`` ``inputs`` inputs from Hypothesis alone (in rounds of :data:`ROUND`)."""
    report = TargetReport(target.name)
    started = time.perf_counter()
    round_number = 0
    while report.inputs < inputs:
        before = report.inputs

        @_given(
            target.strategy, min(ROUND, inputs - report.inputs), seed * 1_000_003 + round_number
        )
        def one(data: bytes) -> None:
            if report.inputs < inputs:
                _check(target, report, data)

        one()
        round_number += 1
        if report.inputs == before:  # the strategy had nothing new to give
            break
    report.seconds = time.perf_counter() - started
    return report


def seed_corpus(target: Target, examples: int, seed: int) -> list[bytes]:
    """Inputs shaped like the real thing, from Hypothesis: where atheris starts mutating."""
    found: list[bytes] = []

    @_given(target.strategy, examples, seed)
    def collect(data: bytes) -> None:
        found.append(data)

    collect()
    return found


def run_with_atheris(target: Target, inputs: int, seed: int, workdir: Path) -> TargetReport:
    """Feed ``target`` ``inputs`` inputs in a child process: atheris (libFuzzer), coverage-guided,
    mutating a seed corpus Hypothesis made. Its log is ``<target>.log`` in ``workdir``."""
    corpus = workdir / f"corpus-{target.name}"
    corpus.mkdir(parents=True, exist_ok=True)
    # A quick run spends at most a tenth of its inputs on the corpus (Hypothesis is slow).
    examples = min(CORPUS, max(20, inputs // 10))
    for n, data in enumerate(seed_corpus(target, examples, seed)):
        (corpus / f"seed-{n}").write_bytes(data)
    state = workdir / f"{target.name}.json"
    command = [
        sys.executable,
        "-m",
        "civicguard.benchmarks.fuzz",
        target.name,
        str(inputs),
        str(seed),
        str(corpus),
        str(state),
        str(workdir),
    ]
    started = time.perf_counter()
    with (workdir / f"{target.name}.log").open("wb") as log:
        done = subprocess.run(command, stdout=log, stderr=log, check=False)
    report = TargetReport.from_json(target.name, json.loads(state.read_text()))
    report.seconds = time.perf_counter() - started
    if done.returncode != 0:
        # libFuzzer stopped on an input that hung or crashed the interpreter itself.
        artifacts = sorted(workdir.glob(f"{target.name}-*"))
        data = artifacts[0].read_bytes() if artifacts else b""
        report.findings[("Abort", f"exit {done.returncode}")] = Finding(
            "Abort", f"exit {done.returncode}", "the child stopped; see its log", data
        )
    return report


def _child(argv: list[str]) -> None:
    """A child process of :func:`run_with_atheris`: instrument the parsers, then fuzz one target."""
    import atheris

    name, runs, seed, corpus, state, workdir = argv
    limit = int(runs)
    with atheris.instrument_imports(include=["civicguard.ingest", "civicguard.catalog"]):
        import civicguard.catalog.loader
        import civicguard.ingest.decode
        import civicguard.ingest.replay

    target = make_target(name, civicguard.catalog.loader.demo_catalog(), Path(workdir))
    report = TargetReport(name)

    def save() -> None:
        Path(state).write_text(json.dumps(report.to_json()))

    def one(data: bytes) -> None:
        if _check(target, report, data) or report.inputs % 10_000 == 0:
            save()
        if report.inputs >= limit:
            save()
            os._exit(0)  # libFuzzer's own exit skips Python's clean-up; the state is saved

    save()
    atheris.Setup(
        [
            sys.argv[0],
            f"-runs={limit * 2 + 10_000}",
            f"-seed={int(seed) + 1}",
            "-max_len=4096",
            "-timeout=60",
            "-print_final_stats=0",
            f"-artifact_prefix={workdir}/{name}-",
            corpus,
        ],
        one,
    )
    atheris.Fuzz()


def has_atheris() -> bool:
    """True if atheris can be imported here (it ships wheels for Linux x86-64 only)."""
    return importlib.util.find_spec("atheris") is not None


def fuzz(
    inputs: int,
    *,
    seed: int = 0,
    targets: tuple[str, ...] = tuple(SHARES),
    out: Path | None = None,
    engine: str = "auto",
) -> list[TargetReport]:
    """Run every chosen target on its share of ``inputs``; write reproducers under ``out``.

    ``engine`` is ``atheris`` (coverage-guided, from a Hypothesis seed corpus), ``hypothesis``
    (generation alone, about a hundred inputs a second), or ``auto``: atheris where it is
    installed.
    """
    from civicguard.catalog.loader import demo_catalog

    catalog = demo_catalog()
    chosen = [t for t in SHARES if t in targets]
    total_share = sum(SHARES[t] for t in chosen)
    if engine == "atheris" and not has_atheris():
        raise RuntimeError("atheris is not installed here: pip install atheris (Linux x86-64)")
    use_atheris = engine == "atheris" or (engine == "auto" and has_atheris())
    reports = []
    with tempfile.TemporaryDirectory(prefix="civicguard-fuzz-") as tmp:
        workdir = Path(tmp)
        for name in chosen:
            share = math.ceil(inputs * SHARES[name] / total_share)
            target = make_target(name, catalog, workdir)
            if use_atheris:
                report = run_with_atheris(target, share, seed, workdir)
                if out is not None:
                    out.mkdir(parents=True, exist_ok=True)
                    shutil.copy(workdir / f"{name}.log", out / f"{name}.log")
            else:
                report = run_with_hypothesis(target, share, seed)
            report.engine = "atheris" if use_atheris else "hypothesis"
            reports.append(report)
    if out is not None:
        save_findings(reports, out)
    return reports


def save_findings(reports: list[TargetReport], out: Path) -> None:
    """Each finding's first input as ``<target>-<n>.bin``, and ``findings.json`` listing them."""
    out.mkdir(parents=True, exist_ok=True)
    listed = []
    for report in reports:
        for n, finding in enumerate(report.findings.values(), start=1):
            name = f"{report.name}-{n}.bin"
            (out / name).write_bytes(finding.reproducer)
            listed.append(
                {
                    "target": report.name,
                    "exception": finding.kind,
                    "raised_at": finding.where,
                    "message": finding.message,
                    "count": finding.count,
                    "reproducer": name,
                }
            )
    summary = {
        "inputs": {r.name: r.inputs for r in reports},
        "findings": listed,
    }
    (out / "findings.json").write_text(json.dumps(summary, indent=2) + "\n")


def print_reports(reports: list[TargetReport], console: Console, out: Path | None) -> None:
    """The run as a table per target, then each finding with its reproducer's file."""
    from rich.table import Table

    table = Table(title="fuzzing the parsers")
    for column in ("target", "engine", "inputs", "inputs/s", "undocumented exceptions"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for r in reports:
        rate = r.inputs / r.seconds if r.seconds else 0.0
        table.add_row(r.name, r.engine, f"{r.inputs:,}", f"{rate:,.0f}", str(len(r.findings)))
    console.print(table)
    total = sum(r.inputs for r in reports)
    console.print(f"{total:,} inputs in all")
    for r in reports:
        for n, f in enumerate(r.findings.values(), start=1):
            saved = f" -> {out / f'{r.name}-{n}.bin'}" if out is not None else ""
            console.print(
                f"{r.name}: {f.kind} at {f.where} ({f.count}x): {f.message}{saved}",
                markup=False,
                highlight=False,
            )
    if not any(r.findings for r in reports):
        console.print("no undocumented exception")


if __name__ == "__main__":
    _child(sys.argv[1:])
