"""Prometheus metrics of the platform, in one registry served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The platform's counters and histograms, in a registry of their own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.accepted = Counter("civicguard_readings_accepted", "Readings accepted", registry=r)
        self.duplicates = Counter(
            "civicguard_readings_duplicate", "Retransmitted readings stored once", registry=r
        )
        self.rejected = Counter(
            "civicguard_messages_rejected", "Refused messages and readings", ["reason"], registry=r
        )
        self.stored = Counter(
            "civicguard_readings_stored", "Readings written to the store", registry=r
        )
        self.alerts = Counter(
            "civicguard_alerts", "Alerts raised", ["detector", "severity"], registry=r
        )
        self.detector_failures = Counter(
            "civicguard_detector_failures", "Detector steps that raised", ["detector"], registry=r
        )
        self.gateway = Counter(
            "civicguard_privacy_gateway",
            "Readings through the privacy gateway, refused, and field values by treatment",
            ["stream", "action"],
            registry=r,
        )
        self.retention_removed = Counter(
            "civicguard_retention_removed",
            "Records removed (or scrubbed) by the retention sweeper",
            ["target"],
            registry=r,
        )
        self.open_incidents = Gauge("civicguard_incidents_open", "Unresolved incidents", registry=r)
        self.alert_latency = Histogram(
            "civicguard_reading_to_alert_seconds",
            "Time from a reading's arrival to the alert it caused",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=r,
        )


METRICS = Metrics()
