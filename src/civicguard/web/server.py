"""Running the web app: a uvicorn server in a background thread, and ``civicguard serve``."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn

from civicguard.govern.accounts import Role, create_user, random_password
from civicguard.platform import Platform
from civicguard.settings import Settings
from civicguard.web.app import create_app

INITIAL_ADMIN = "admin"
INITIAL_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name


class WebServer:
    """The API and pages of ``platform`` served by uvicorn on a background thread."""

    def __init__(self, platform: Platform, host: str = "127.0.0.1", port: int = 8000) -> None:
        self.platform = platform
        self.host = host
        self.port = port
        self.app = create_app(platform)
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            # Live streams end within a second of stop(); do not wait longer than that for them.
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._server.run, name="civicguard-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"web server failed to start on {self.host}:{self.port}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"web server did not start within {timeout} s")
            time.sleep(0.01)
        # With port 0 the system picked one; report the real one.
        for server in self._server.servers:
            for sock in server.sockets:
                self.port = int(sock.getsockname()[1])
                break

    def stop(self) -> None:
        """Close live streams, stop accepting connections and wait for the thread to end."""
        self.app.state.stopping.set()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def ensure_initial_admin(platform: Platform, data_dir: Path) -> str | None:
    """On first start (no staff at all) create ``admin`` with a random password; return it.

    The password is also written to ``<data_dir>/initial-admin-password`` (mode 0600) so that a
    service started without a terminal can still be signed into; delete the file once read.
    """
    if platform.store.users.all():
        return None
    password = random_password()
    create_user(platform.store.users, INITIAL_ADMIN, password, Role.ADMIN, platform.clock.now())
    path = data_dir / INITIAL_PASSWORD_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    return password


def _load_streets(platform: Platform, settings: Settings) -> None:
    try:
        from civicguard.respond.streets import load_streets  # written by the simulation team
    except ImportError:
        return
    if settings.streets_osm:
        platform.streets = load_streets(Path(settings.streets_osm))


def serve_platform(settings: Settings) -> None:
    """Run everything in one process until Ctrl-C: pipeline, MQTT subscriber if set, web."""
    platform = Platform.build(settings)
    mqtt: Any = None
    try:
        password = ensure_initial_admin(platform, Path(settings.data_dir))
        if password is not None:
            print(f"created staff account 'admin' with password: {password}")
            print(f"(also in {Path(settings.data_dir) / INITIAL_PASSWORD_FILE}; shown once)")
        _load_streets(platform, settings)
        if settings.event_log != "nats":
            # With NATS, `civicguard worker` processes run the pipeline; serve only ingests.
            platform.start_processing()
        platform.start_retention()
        if settings.mqtt_host:
            from civicguard.ingest.mqtt import MqttIngest

            mqtt = MqttIngest(
                platform.ingest,
                platform.registry,
                settings.mqtt_host,
                settings.mqtt_port,
                settings.mqtt_username,
                settings.mqtt_password,
                receiver="process",  # receiving takes a core of its own (see bench ingest)
                client_id=settings.mqtt_client_id,
                trust_topic=settings.mqtt_trust_topic,
            )
            mqtt.start()
        app = create_app(platform)
        print(f"civicguard serving on http://{settings.host}:{settings.port}  (Ctrl-C stops)")
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        # uvicorn owns the main thread here: SIGTERM and Ctrl-C stop it gracefully, and then
        # the platform drains (finally, below).
        _DrainingServer(config).run()
        app.state.stopping.set()
    finally:
        if mqtt is not None:
            mqtt.stop()
        platform.close()


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, except that a stopping signal is not raised again once it has stopped.

    uvicorn re-raises SIGTERM after its graceful shutdown, and SIGTERM's default action ends
    the process on the spot: the platform's drain would never run. Here SIGINT and SIGTERM
    only ask the server to stop (a second SIGINT forces it, as uvicorn does), and the caller
    goes on to drain; a SIGTERM during the drain ends the process, which the durable event log
    makes safe.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        stopping = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in stopping}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
