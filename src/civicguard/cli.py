"""The ``civicguard`` command line: run the platform, manage devices and staff, benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from civicguard.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

app = typer.Typer(
    no_args_is_help=True, help="civicguard: privacy-by-design city security operations."
)
devices_app = typer.Typer(no_args_is_help=True, help="Provision, list and revoke devices.")
users_app = typer.Typer(no_args_is_help=True, help="Manage staff accounts.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures.")
water_app = typer.Typer(no_args_is_help=True, help="The water network's attack detector.")
app.add_typer(devices_app, name="devices")
app.add_typer(users_app, name="users")
app.add_typer(bench_app, name="bench")
app.add_typer(water_app, name="water")

console = Console()

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where all state lives (default ./civicguard-data)."),
]


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    settings = Settings()
    changes: dict[str, object] = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        changes["data_dir"] = data_dir
    return settings.model_copy(update=changes)


@app.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(help="Seconds to run; without it, run until Ctrl-C.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city and its scenarios.")] = 7,
    data_dir: DataDir = None,
    port: Annotated[int, typer.Option(help="Port of the web interface and API.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Run the platform with its simulated city and scripted scenarios."""
    from civicguard.sim.demo import run_demo

    code = run_demo(_settings(data_dir, port=port, host=host), duration=duration, seed=seed)
    raise typer.Exit(code)


@app.command()
def serve(
    data_dir: DataDir = None,
    port: Annotated[int | None, typer.Option(help="Port of the web interface and API.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
) -> None:
    """Run the API, the web pages and the pipeline (and the MQTT subscriber if configured)."""
    from civicguard.web.server import serve_platform

    serve_platform(_settings(data_dir, port=port, host=host))


@app.command()
def worker(
    data_dir: DataDir = None,
    name: Annotated[
        str, typer.Option(help="Consumer name; partition i is consumed through NAME-i.")
    ] = "workers",
    partition: Annotated[
        int | None,
        typer.Option(
            help="The partition to consume (0..CIVICGUARD_NATS_PARTITIONS-1); "
            "may be left out when there is one partition."
        ),
    ] = None,
) -> None:
    """Consume one partition of the NATS JetStream event log; run one per partition."""
    from civicguard.bus.nats import ConsumerConflictError
    from civicguard.worker import PartitionError, run_worker

    try:
        run_worker(_settings(data_dir, event_log="nats"), durable=name, partition=partition)
    except (PartitionError, ConsumerConflictError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="CSV or JSON-lines file of readings.")],
    data_dir: DataDir = None,
) -> None:
    """Ingest a file of recorded readings (CSV or JSON lines), with a progress bar."""
    from civicguard.ingest.replay import replay_file
    from civicguard.platform import Platform

    settings = _settings(data_dir)
    platform = Platform.build(settings)
    try:
        report = replay_file(platform, file, console=console)
        # At city scale the partitions' workers store what was published; here, this process.
        while settings.event_log != "nats" and platform.processor.run_once(timeout=0.05):
            pass
    finally:
        platform.close()
    console.print(report.summary())
    if report.rejected:
        raise typer.Exit(1)


@devices_app.command("provision")
def devices_provision(
    device_id: Annotated[str, typer.Argument(help="Unique id of the device.")],
    stream: Annotated[str, typer.Option(help="Catalog stream the device reports on.")],
    lat: Annotated[float, typer.Option(help="Latitude of the device's site.")],
    lon: Annotated[float, typer.Option(help="Longitude of the device's site.")],
    district: Annotated[str, typer.Option(help="District of the city.")] = "",
    label: Annotated[str, typer.Option(help="Human-readable name.")] = "",
    data_dir: DataDir = None,
) -> None:
    """Register a device and print its secret (shown once)."""
    from civicguard.ingest.model import Device
    from civicguard.platform import Platform

    platform = Platform.build(_settings(data_dir))
    try:
        device = Device(
            id=device_id, stream=stream, lat=lat, lon=lon, district=district, label=label
        )
        try:
            secret = platform.registry.provision(device, platform.clock.now())
        except ValueError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    finally:
        platform.close()
    console.print(f"device {device_id} provisioned on {stream}")
    console.print(f"secret (store it on the device; it is not shown again): {secret}")


@devices_app.command("list")
def devices_list(data_dir: DataDir = None) -> None:
    """List provisioned devices."""
    from civicguard.platform import Platform

    platform = Platform.build(_settings(data_dir))
    try:
        table = Table("id", "stream", "district", "lat", "lon", "revoked")
        for d in platform.registry.all():
            table.add_row(
                d.id,
                d.stream,
                d.district,
                f"{d.lat:.5f}",
                f"{d.lon:.5f}",
                "yes" if d.revoked else "",
            )
    finally:
        platform.close()
    console.print(table)


@devices_app.command("revoke")
def devices_revoke(
    device_id: Annotated[str, typer.Argument(help="Device to revoke.")], data_dir: DataDir = None
) -> None:
    """Revoke a device: everything it sends from now on is refused."""
    from civicguard.platform import Platform

    platform = Platform.build(_settings(data_dir))
    try:
        if not platform.registry.revoke(device_id, platform.clock.now()):
            console.print(f"[red]error:[/red] no device {device_id!r}")
            raise typer.Exit(2)
    finally:
        platform.close()
    console.print(f"device {device_id} revoked; running processes refuse it within a second")


@devices_app.command("broker-auth")
def devices_broker_auth(
    out: Annotated[Path, typer.Option("--out", help="Directory for the password and ACL files.")],
    platform_user: Annotated[
        str, typer.Option(help="The platform's own broker login (reads every device topic).")
    ] = "civicguard",
    platform_password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="Password of that login.")
    ] = "",
    data_dir: DataDir = None,
) -> None:
    """Write Mosquitto's password file and ACL: each device may publish only on its own topics."""
    from civicguard.ingest.mqtt import write_mosquitto_auth
    from civicguard.platform import Platform

    platform = Platform.build(_settings(data_dir))
    try:
        passwords, acl = write_mosquitto_auth(
            platform.registry, out, platform_user, platform_password
        )
    finally:
        platform.close()
    console.print(f"password_file {passwords}")
    console.print(f"acl_file {acl}")
    console.print("add both lines to mosquitto.conf with allow_anonymous false, then reload it")


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="operator, analyst, admin or auditor.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    data_dir: DataDir = None,
) -> None:
    """Create a staff account."""
    from civicguard.govern.accounts import create_user
    from civicguard.platform import Platform

    platform = Platform.build(_settings(data_dir))
    try:
        create_user(platform.store.users, username, password, role, platform.clock.now())
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        platform.close()
    console.print(f"user {username} ({role}) created")


@bench_app.command("ingest")
def bench_ingest(
    readings: Annotated[
        int, typer.Option(help="Readings to push through the batch path.")
    ] = 1_000_000,
    mqtt_messages: Annotated[int, typer.Option(help="Messages for the MQTT comparison.")] = 200_000,
    mqtt_port: Annotated[
        int, typer.Option(help="Port of the Mosquitto to use (0: start one).")
    ] = 0,
) -> None:
    """Push readings through the whole pipeline and print throughput and latency."""
    from civicguard.benchmarks.ingest import run_ingest_benchmark

    run_ingest_benchmark(readings=readings, mqtt_messages=mqtt_messages, mqtt_port=mqtt_port)


def _shared_data(name: str) -> Path:
    """Where the public benchmark data lives: ``$CIVICGUARD_SHARED_DATA`` or ``../shared/data``."""
    import os

    candidates = (
        [Path(os.environ["CIVICGUARD_SHARED_DATA"])]
        if "CIVICGUARD_SHARED_DATA" in os.environ
        else []
    )
    candidates += [
        Path.cwd().parent / "shared" / "data",
        Path(__file__).resolve().parents[3] / "shared" / "data",
    ]
    for base in candidates:
        if (base / name).exists():
            return base / name
    raise typer.BadParameter(f"cannot find {name}/ under {', '.join(map(str, candidates))}")


@bench_app.command("batadal")
def bench_batadal(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for the test-set detection report.")
    ],
    data: Annotated[Path | None, typer.Option(help="BATADAL data directory.")] = None,
) -> None:
    """Score the water-network attack detector on BATADAL dataset 04; write the test report."""
    from civicguard.benchmarks.batadal import run_batadal

    out.mkdir(parents=True, exist_ok=True)
    run_batadal(out, data or _shared_data("batadal"))


@water_app.command("fit")
def water_fit(
    out: Annotated[Path, typer.Option("--out", help="JSON file to write the fitted model to.")],
    data: Annotated[Path | None, typer.Option(help="BATADAL data directory.")] = None,
) -> None:
    """Fit the water attack detector on BATADAL's normal year and save it for the pipeline.

    Laws and thresholds come from dataset03 with the default settings, as ``bench batadal``'s
    label-free detector; the fit is then scored on dataset04 (its labels are not used to fit).
    Point ``CIVICGUARD_WATER_MODEL`` at the file to run the ``water_attack`` detector.
    """
    import numpy as np

    from civicguard.detect.water.detector import WatchSettings, WaterAttackModel, detect_batch
    from civicguard.detect.water.network import load_inp
    from civicguard.detect.water.persist import save_model
    from civicguard.detect.water.scada import read_scada_csv

    folder = data or _shared_data("batadal")
    needed = ("BATADAL_dataset03.csv", "BATADAL_dataset04.csv", "CTOWN.INP")
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise typer.BadParameter(f"{folder} lacks {', '.join(missing)}", param_hint="--data")
    normal = read_scada_csv(folder / "BATADAL_dataset03.csv")
    model = WaterAttackModel(load_inp(folder / "CTOWN.INP"), normal.columns, WatchSettings())
    model.fit(normal)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, out)
    attacked = read_scada_csv(folder / "BATADAL_dataset04.csv")
    flags = np.array([v.under_attack for v in detect_batch(model, attacked)])
    labelled = attacked.labels == 1 if attacked.labels is not None else np.zeros(len(flags), bool)
    console.print(
        f"water model: {len(normal)} normal hours, {len(model.columns)} tags -> {out}\n"
        f"dataset04: {int(flags.sum())} of {len(flags)} hours flagged; "
        f"{int((flags & labelled).sum())} of {int(labelled.sum())} labelled attack hours flagged"
    )


@bench_app.command("nab")
def bench_nab(
    out: Annotated[Path, typer.Option("--out", help="Directory for results in NAB's layout.")],
    data: Annotated[Path | None, typer.Option(help="NAB data directory.")] = None,
) -> None:
    """Run the anomaly ensemble over the NAB corpus and print its scores beside the scoreboard."""
    from civicguard.benchmarks.nab_run import run_nab

    out.mkdir(parents=True, exist_ok=True)
    run_nab(out, data or _shared_data("nab"), console=console)


def _pii_sentences() -> list[Path]:
    """The labelled PII sets in the repository: hand-written and generated, in tests/data/pii."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        paths = [root / "tests" / "data" / "pii" / name for name in _PII_SETS]
        if all(path.exists() for path in paths):
            return paths
    raise typer.BadParameter(f"cannot find {', '.join(_PII_SETS)} in tests/data/pii")


_PII_SETS = ("sentences.jsonl", "generated.jsonl")


@bench_app.command("pii")
def bench_pii(
    data: Annotated[
        list[Path] | None,
        typer.Option(help="Labelled sentences (JSON lines), repeatable; default: the repo's."),
    ] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Passes over the set for the speed.")] = 5,
) -> None:
    """Precision, recall and F2 of the free-text scrubber per set, split and entity type."""
    from civicguard.benchmarks.pii import DatasetError, run_pii_benchmark

    try:
        run_pii_benchmark(data or _pii_sentences(), repeat=repeat, console=console)
    except DatasetError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@bench_app.command("surge")
def bench_surge(
    seeds: Annotated[
        str, typer.Option(help="Comma-separated simulator seeds (1-3 tuned the defaults).")
    ] = "4,5,6",
    hours: Annotated[float, typer.Option(min=1.0, help="Simulated hours per seed.")] = 6.0,
) -> None:
    """Error of the crowd surge forecast at each horizon, and its alerts' lead and false alarms."""
    from civicguard.benchmarks.surge import run_surge_benchmark

    try:
        chosen = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError as exc:
        message = f"--seeds must be integers separated by commas, got {seeds!r}"
        raise typer.BadParameter(message) from exc
    run_surge_benchmark(seeds=chosen or (4,), hours=hours, console=console)


@bench_app.command("fuzz")
def bench_fuzz(
    inputs: Annotated[
        int, typer.Option(min=1, help="Inputs in all, shared among the targets.")
    ] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated inputs.")] = 0,
    target: Annotated[
        list[str] | None,
        typer.Option(help="Only this target (decode, replay, catalog); repeatable."),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Where each finding's first input and findings.json go.")
    ] = Path("fuzz-findings"),
    engine: Annotated[
        str, typer.Option(help="atheris, hypothesis, or auto (atheris where installed).")
    ] = "auto",
) -> None:
    """Hostile input against the ingest decoder, the replay reader and the catalog loader.

    Exits 1 if a target raised an exception it does not document.
    """
    from civicguard.benchmarks.fuzz import SHARES, fuzz, print_reports

    chosen = tuple(target or SHARES)
    unknown = sorted(set(chosen) - set(SHARES))
    if unknown:
        raise typer.BadParameter(f"--target must be one of {', '.join(SHARES)}, got {unknown}")
    if engine not in {"auto", "atheris", "hypothesis"}:
        raise typer.BadParameter(f"--engine must be auto, atheris or hypothesis, got {engine!r}")
    try:
        reports = fuzz(inputs, seed=seed, targets=chosen, out=out, engine=engine)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    print_reports(reports, console, out)
    if any(r.findings for r in reports):
        raise typer.Exit(1)


@bench_app.command("faults")
def bench_faults(
    readings: Annotated[int, typer.Option(min=2, help="Readings each row sends.")] = 20_000,
    batch: Annotated[int, typer.Option(min=1, help="Readings per HTTP body.")] = 1_000,
    devices: Annotated[int, typer.Option(min=1, help="Devices sending.")] = 4,
    db_outage: Annotated[
        float, typer.Option("--db-outage", min=0.0, help="Seconds PostgreSQL is unreachable.")
    ] = 60.0,
    disk_fault: Annotated[
        float, typer.Option(min=0.0, help="Seconds a disk stays full or read-only.")
    ] = 5.0,
    only: Annotated[
        str, typer.Option(help="Play only rows whose name contains this (e.g. 'city', 'disk').")
    ] = "",
    workdir: Annotated[
        Path | None, typer.Option(help="Folder for the rows' data and logs (default: a temp dir).")
    ] = None,
) -> None:
    """Kill, stop and starve real processes mid-stream; print what was acknowledged and lost."""
    import tempfile

    from civicguard.benchmarks.faults import ROWS, FaultSettings, run_faults_benchmark

    rows = tuple(r for r in ROWS if only.lower() in r.lower())
    if not rows:
        raise typer.BadParameter(f"--only {only!r} matches none of: {', '.join(ROWS)}")
    settings = FaultSettings(
        readings=readings, batch=batch, devices=devices, db_outage_s=db_outage,
        disk_fault_s=disk_fault,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="civicguard-faults-") as tmp:
        base = workdir or Path(tmp)
        console.print(f"rows' data and logs in {base}")
        run_faults_benchmark(rows, base, settings, console)


@app.command()
def scrub() -> None:
    """Read text lines on stdin, write each with personal identifiers replaced by tags."""
    import sys

    from civicguard.privacy.scrub import default_scrubber

    scrubber = default_scrubber()
    for line in sys.stdin:
        body = line.rstrip("\r\n")
        sys.stdout.write(scrubber.scrub(body).text + line[len(body) :])
        sys.stdout.flush()


backup_app = typer.Typer(
    no_args_is_help=True, help="Back up and restore the database (keys are never in a backup)."
)
app.add_typer(backup_app, name="backup")


def _engine(data_dir: Path | None) -> Engine:
    from civicguard.store.database import make_engine, sqlite_url

    settings = _settings(data_dir)
    return make_engine(settings.database_url or sqlite_url(Path(settings.data_dir)))


@backup_app.command("create")
def backup_create(
    dest: Annotated[Path, typer.Argument(help="File to write; must not exist yet.")],
    data_dir: DataDir = None,
) -> None:
    """Take a consistent backup of the database while the platform runs."""
    from civicguard.store.backup import BackupError, create_backup

    try:
        report = create_backup(_engine(data_dir), dest)
    except BackupError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"backup of the {report.dialect} database written to {dest} ({report.bytes} B)")


@backup_app.command("restore")
def backup_restore(
    source: Annotated[Path, typer.Argument(help="A file written by `backup create`.")],
    data_dir: DataDir = None,
) -> None:
    """Replace the database by a backup, then re-apply what happened since. Stop the platform
    first.

    Erasures since the backup are re-applied from the erasure ledger beside the keys, and keys
    destroyed since (never in a backup) stay destroyed; the output says how many of each.
    """
    from civicguard.citizens.restore import after_restore
    from civicguard.platform import Platform
    from civicguard.store.backup import BackupError, restore_backup
    from civicguard.store.lifecycle import KeyEventRepository

    settings = _settings(data_dir)
    try:
        restore_backup(_engine(data_dir), source)
    except BackupError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    platform = Platform.build(settings)  # brings an older backup's schema up to date too
    try:
        journal = KeyEventRepository(platform.store.engine)
        report = after_restore(platform.citizens, platform.keys, journal, platform.clock.now())
    finally:
        platform.close()
    console.print(f"database restored from {source}", highlight=False)
    console.print(report.summary(), highlight=False)


retention_app = typer.Typer(no_args_is_help=True, help="Remove what is past its catalog retention.")
app.add_typer(retention_app, name="retention")


@retention_app.command("run")
def retention_run(data_dir: DataDir = None) -> None:
    """Sweep once: delete and scrub everything past retention, destroy expired keys, report."""
    from civicguard.platform import Platform

    platform = Platform.build(_settings(data_dir))
    try:
        report = platform.retention.run()
    finally:
        platform.close()
    for line in report.lines():
        console.print(line, highlight=False)
    if report.failed:
        raise typer.Exit(1)


consent_app = typer.Typer(no_args_is_help=True, help="Signed consent receipts.")
app.add_typer(consent_app, name="consent")
subject_app = typer.Typer(
    no_args_is_help=True, help="Subject rights: export and erasure (crypto-shredding)."
)
app.add_typer(subject_app, name="subject")


@consent_app.command("public-key")
def consent_public_key(data_dir: DataDir = None) -> None:
    """Print the PEM public key that consent receipts are signed with."""
    from civicguard.citizens.receipts import ReceiptSigner
    from civicguard.privacy.keys import FileKeyStore

    signer = ReceiptSigner(FileKeyStore.in_dir(Path(_settings(data_dir).data_dir)))
    typer.echo(signer.public_pem, nl=False)


@consent_app.command("verify")
def consent_verify(
    file: Annotated[Path, typer.Argument(help="A receipt as JSON.")],
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="PEM key to check against (default: the platform's)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Check a consent receipt's signature: exit 0 and "valid", or non-zero and what is wrong."""
    from civicguard.citizens.receipts import (
        ReceiptError,
        load_public_key,
        parse_receipt,
        stored_public_key,
        verify_receipt,
    )

    try:
        data = file.read_bytes()
        if public_key is not None:
            key = load_public_key(public_key.read_bytes())
        else:
            key = stored_public_key(Path(_settings(data_dir).data_dir))
    except (OSError, ReceiptError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        receipt = parse_receipt(data)
        verify_receipt(receipt, key)
    except ReceiptError as exc:
        typer.echo(f"invalid: {file}: {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"valid: consent receipt {receipt['consentReceiptID']}")


@subject_app.command("export")
def subject_export(
    citizen_id: Annotated[str, typer.Argument(metavar="ID", help="The citizen id.")],
    data_dir: DataDir = None,
) -> None:
    """Print everything linked to a citizen as JSON, each item with its purpose and retention."""
    import orjson

    from civicguard.citizens import SubjectIdError
    from civicguard.platform import Platform

    platform = Platform.build(_settings(data_dir))
    try:
        exported = platform.citizens.rights.export(citizen_id, by="cli")
    except SubjectIdError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        platform.close()
    typer.echo(orjson.dumps(exported, option=orjson.OPT_INDENT_2).decode())


@subject_app.command("erase")
def subject_erase(
    citizen_id: Annotated[str, typer.Argument(metavar="ID", help="The citizen id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Erase a citizen: destroy their key (every copy, backups too, becomes unreadable)."""
    from civicguard.citizens import SubjectIdError
    from civicguard.platform import Platform

    if not yes:
        typer.confirm("Erase this citizen? Their data cannot be recovered", abort=True)
    platform = Platform.build(_settings(data_dir))
    try:
        report = platform.citizens.rights.erase(citizen_id, by="cli")
    except SubjectIdError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        platform.close()
    destroyed = "destroyed" if report.key_destroyed else "was already gone"
    typer.echo(
        f"subject {report.subject} erased: key {destroyed}, {report.rows_deleted} rows deleted "
        f"(request {report.request_id})"
    )


def main() -> None:
    """Entry point of the ``civicguard`` script."""
    app()


if __name__ == "__main__":
    main()
