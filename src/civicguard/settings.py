"""Settings from the environment (``CIVICGUARD_*``), with embedded defaults for one box."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where state lives and which adapters run; every field has an embedded default."""

    model_config = SettingsConfigDict(env_prefix="CIVICGUARD_", extra="ignore")

    data_dir: Path = Path("./civicguard-data")
    #: SQLAlchemy URL; empty means the SQLite file inside ``data_dir``.
    database_url: str = ""
    #: Path of a catalog YAML; empty means the demo city's catalog shipped with the package.
    catalog: str = ""
    #: ``local``: a durable log in ``<data_dir>/events.db`` (embedded default); ``nats``:
    #: JetStream at city scale; ``memory``: in-process, not durable, for tests only.
    event_log: Literal["local", "memory", "nats"] = "local"
    nats_url: str = "nats://127.0.0.1:4222"
    nats_stream: str = "CIVICGUARD"
    #: Partitions of the event log (by device); run one worker per partition at city scale.
    nats_partitions: int = Field(default=1, ge=1, le=1024)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    mqtt_host: str = ""
    mqtt_port: int = 1883
    mqtt_username: str = ""
    mqtt_password: str = ""
    #: Trust the ``<prefix>/<device>/readings`` topic as naming its sender. Only for a broker
    #: that authenticates each device and whose ACL lets it write only its own topic
    #: (``write_mosquitto_auth``); civicguard cannot check that. Off: devices publish signed
    #: messages on ``/signed``, and a message on ``/readings`` is refused as unauthenticated.
    mqtt_trust_topic: bool = False
    #: The subscriber's MQTT client id: a persistent session, so that the broker keeps what
    #: civicguard has not acknowledged (not yet durable) across a restart. One per process.
    mqtt_client_id: str = "civicguard-ingest"
    #: OpenStreetMap XML of the city's streets; empty means the demo city's extract if present.
    streets_osm: str = ""
    #: Sliding window of sequence numbers behind each device's highest, for replay detection.
    replay_window: int = 32
    #: Seconds between retention sweeps inside ``serve`` and ``demo``; 0 turns the schedule off.
    retention_interval: float = Field(default=600.0, ge=0)
    #: Failed staff sign-ins allowed per account name (known or not) within
    #: ``login_failure_window`` seconds; beyond it sign-in answers 429 without checking the
    #: password until the oldest failure ages out. A successful sign-in clears the account.
    login_failures_per_account: int = Field(default=5, ge=1)
    #: The same per client address, across account names (IPv6 per /64 network).
    login_failures_per_address: int = Field(default=20, ge=1)
    #: Sliding window of the sign-in failure limits, in seconds (15 minutes).
    login_failure_window: float = Field(default=900.0, gt=0)
    #: A fitted water attack model (``civicguard water fit``); empty means the ``water_attack``
    #: detector is not run.
    water_model: str = ""
