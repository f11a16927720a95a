"""The catalog as JSON: streams, their fields and treatments, and the purposes of processing."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter

from civicguard.catalog.model import Treatment
from civicguard.web.deps import API_PREFIX, PlatformDep

router = APIRouter(prefix=f"{API_PREFIX}/catalog", tags=["catalog"])


@router.get("")
def get_catalog(platform: PlatformDep) -> dict[str, Any]:
    """Every stream with its category, purposes, legal basis, retention and per-field treatment."""
    catalog = platform.catalog
    return {
        "version": catalog.version,
        "city": catalog.city,
        "controller": catalog.controller,
        "pseudonym_rotation_s": catalog.pseudonym_rotation_s,
        "limits": dataclasses.asdict(catalog.limits),
        "treatments": [t.value for t in Treatment],
        "purposes": [dataclasses.asdict(p) for p in catalog.purposes],
        "streams": [dataclasses.asdict(s) for s in catalog.streams],
    }
