"""``civicguard demo``: the platform with its simulated city, scripted scenarios and a summary.

Every simulated message takes the real path a device's would: it is signed with the device's
secret, authenticated by the registry and handed to the ingest service.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from civicguard.ingest.model import Device, Transport
from civicguard.ingest.registry import AuthError, sign
from civicguard.platform import Platform
from civicguard.respond.streets import city_streets
from civicguard.settings import Settings
from civicguard.sim.city import SimulatedCity
from civicguard.sim.scenarios import DETECTED_BY, ScenarioPlayer, ScenarioRecord

#: An alert belongs to a scenario if it names the scenario's device and comes from the
#: injection on, until this long after the scenario ended. An alert raised before the
#: injection saw something else: it is never credited.
AFTER_S = 10.0
#: How long the end of a run waits for the pipeline to work off what is still queued.
DRAIN_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioOutcome:
    """A scenario as the summary reports it."""

    record: ScenarioRecord
    first_alert: dict[str, Any] | None

    @property
    def detected(self) -> bool:
        """True if an alert on the scenario's device came in its window."""
        return self.first_alert is not None


def explains(record: ScenarioRecord, alert: dict[str, Any]) -> bool:
    """True if ``alert`` is on ``record``'s device, from its injection until ``AFTER_S`` past
    its end, and raised by a detector the scenario's kind is about."""
    if record.started_at is None or alert.get("device_id") != record.plan.device_id:
        return False
    detectors = DETECTED_BY.get(record.plan.kind)
    if detectors is not None and alert.get("detector") not in detectors:
        return False
    end = record.ended_at if record.ended_at is not None else record.started_at
    created = float(alert.get("created_at") or 0.0)
    return record.started_at <= created <= end + AFTER_S


def score(
    records: list[ScenarioRecord], alerts: list[dict[str, Any]]
) -> tuple[list[ScenarioOutcome], list[dict[str, Any]]]:
    """Each scenario's first alert, and the alerts that no scenario explains (false alerts)."""
    ordered = sorted(alerts, key=lambda a: float(a.get("created_at") or 0.0))
    outcomes = [
        ScenarioOutcome(record=r, first_alert=next((a for a in ordered if explains(r, a)), None))
        for r in records
        if r.started_at is not None
    ]
    false = [a for a in ordered if not any(explains(r, a) for r in records)]
    return outcomes, false


def _provision(platform: Platform, city: SimulatedCity) -> dict[str, tuple[Device, str]]:
    """The city's devices with their secrets, provisioning those the data dir does not hold."""
    known = {d.id for d in platform.registry.all()}
    missing = [d for d in city.devices if d.id not in known]
    if missing:
        platform.registry.provision_many(missing, platform.clock.now())
    out: dict[str, tuple[Device, str]] = {}
    for device in city.devices:
        secret = platform.registry.secret(device.id)
        registered = platform.registry.get(device.id)
        if secret is None or registered is None or registered.revoked:
            continue  # revoked by an operator in an earlier run: it stays silent
        out[device.id] = (registered, secret)
    return out


#: Demo accounts, one per staff role; passwords are generated on first run.
DEMO_STAFF = ("operator", "analyst", "admin", "auditor", "dpo")
STAFF_FILE = "demo-staff.txt"


def _demo_staff(platform: Platform, settings: Settings) -> dict[str, str]:
    """Staff accounts for the demo (username = role), passwords kept in a 0600 file."""
    from civicguard.govern.accounts import create_user, random_password

    path = Path(settings.data_dir) / STAFF_FILE
    known: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, password = line.partition(" ")
            known[name] = password
    for role in DEMO_STAFF:
        if role in known or platform.store.users.get(role) is not None:
            continue
        known[role] = random_password()
        create_user(platform.store.users, role, known[role], role, platform.clock.now())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"{name} {password}\n" for name, password in known.items())
    return known


def _start_web(platform: Platform, settings: Settings, console: Console) -> Any:
    from civicguard.web.server import WebServer

    staff = _demo_staff(platform, settings)
    server = WebServer(platform, settings.host, settings.port)
    server.start()
    console.print(f"command centre: http://{settings.host}:{server.port}/")
    console.print(
        "sign in as "
        + ", ".join(f"{name} / {pw}" for name, pw in staff.items())
        + f" (also in {Path(settings.data_dir) / STAFF_FILE})"
    )
    return server


def run_demo(settings: Settings, duration: float | None, seed: int) -> int:
    """Run the simulated city against the platform; print the scenario summary; exit code."""
    console = Console()
    if not console.is_terminal:
        # Piped output (logs, tests) would otherwise squeeze the summary into 80 columns.
        console = Console(width=120)
    platform = Platform.build(settings)
    web: Any = None
    try:
        streets = city_streets(settings)
        platform.streets = streets
        city = SimulatedCity(seed=seed, streets=streets, catalog=platform.catalog)
        fleet = _provision(platform, city)
        city.resume(platform.store.readings.max_seq())
        player = ScenarioPlayer(city, seed, duration)
        alerts: list[dict[str, Any]] = []
        lock = threading.Lock()

        def collect(event: dict[str, Any]) -> None:
            if event.get("type") == "alert":
                with lock:
                    alerts.append(event)

        platform.feed.subscribe(collect)
        platform.start_processing()
        platform.start_retention()
        web = _start_web(platform, settings, console)
        console.print(
            f"simulated city: {len(fleet)} devices in {len(city.districts)} districts "
            f"on {streets.graph.number_of_nodes()} street nodes (seed {seed})"
        )
        if duration is None:
            console.print("running until Ctrl-C")
        started = time.time()
        try:
            _run(
                platform,
                city,
                player,
                fleet=fleet,
                started=started,
                duration=duration,
                console=console,
            )
        except KeyboardInterrupt:
            console.print("stopping")
        player.finish(time.time())
        _drain(platform)
        with lock:
            seen = list(alerts)
        _summary(console, player.records, seen, started)
    finally:
        if web is not None and hasattr(web, "stop"):
            web.stop()
        platform.close()
    return 0


def _run(
    platform: Platform,
    city: SimulatedCity,
    player: ScenarioPlayer,
    *,
    fleet: dict[str, tuple[Device, str]],
    started: float,
    duration: float | None,
    console: Console,
) -> None:
    """Send one tick of the city every second until ``duration`` has passed."""
    tick = 0
    refused: dict[str, int] = {}
    while duration is None or tick < duration:
        due = started + tick
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        # What the pipeline has not yet handled of the previous second, just before this one.
        pending = getattr(platform.log, "pending", None)
        backlog = pending() if callable(pending) else "?"
        now = time.time()
        readings = city.readings(now)
        for message in player.step(now - started, now, readings):
            entry = fleet.get(message.device_id)
            if entry is None:
                continue
            _, secret = entry
            try:
                device = platform.registry.by_signature(
                    message.device_id, message.body, sign(secret, message.body)
                )
            except AuthError as exc:
                platform.ingest.refuse(
                    exc.reason, exc.detail, Transport.SIMULATOR, device_id=message.device_id
                )
                continue
            result = platform.ingest.submit(device, message.body, Transport.SIMULATOR)
            for rejection in result.rejections:
                refused[rejection.reason.value] = refused.get(rejection.reason.value, 0) + 1
        tick += 1
        if tick % 10 == 0:
            lag = time.time() - due
            console.print(
                f"t={tick:>5d} s  tick sent {lag:.2f} s after due  backlog before it {backlog} "
                f"events  refusals {refused or '-'}"
            )


def _drain(platform: Platform) -> None:
    """Wait (briefly) until the pipeline has consumed what was published."""
    pending = getattr(platform.log, "pending", None)
    deadline = time.time() + DRAIN_S
    while callable(pending) and pending() > 0 and time.time() < deadline:
        time.sleep(0.05)
    # Let the last batch finish and one more tick of the absence detectors run.
    time.sleep(0.6)


def _summary(
    console: Console, records: list[ScenarioRecord], alerts: list[dict[str, Any]], started: float
) -> None:
    outcomes, false = score(records, alerts)
    table = Table(title="Scenarios")
    for column in ("scenario", "device", "injected at (s)", "alerted", "time to alert (s)",
                   "first alert"):  # fmt: skip
        table.add_column(column)
    for outcome in outcomes:
        record = outcome.record
        start = record.started_at or started
        first = outcome.first_alert
        delay = f"{float(first['created_at']) - start:.1f}" if first else "-"
        table.add_row(
            record.plan.kind.value,
            record.plan.device_id,
            f"{start - started:.1f}",
            "yes" if first else "no",
            delay,
            str(first.get("detector", "")) if first else "",
        )
    console.print(table)
    console.print(f"alerts raised: {len(alerts)}")
    for alert in false[:10]:
        console.print(
            f"  unexplained: {alert.get('detector')} {alert.get('kind')} on "
            f"{alert.get('device_id')} at {float(alert.get('created_at') or 0) - started:.1f} s"
        )
    detected = sum(1 for o in outcomes if o.detected)
    # These two lines close every run; scripts and tests read them.
    print(f"scenarios detected: {detected}/{len(outcomes)}", flush=True)
    print(f"false alerts: {len(false)}", flush=True)
