"""The explicit list of detectors the pipeline runs; the contract test runs over all of them."""

from __future__ import annotations

from collections.abc import Callable

from civicguard.catalog.model import Catalog
from civicguard.detect.base import Detector
from civicguard.ingest.model import Device


def default_detectors(catalog: Catalog, device: Callable[[str], Device | None]) -> list[Detector]:
    """Every detector of the live pipeline, configured from the catalog."""
    return []
