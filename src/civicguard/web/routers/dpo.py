"""The data protection officer's overview on the API (the DPO page reads it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from civicguard.govern.dpo import privacy_overview
from civicguard.web.deps import API_PREFIX, PlatformDep, StaffDep

router = APIRouter(prefix=f"{API_PREFIX}/dpo", tags=["dpo"])


@router.get("/overview")
def overview(platform: PlatformDep, session: StaffDep) -> dict[str, Any]:
    """Per stream: treatments, what this process did with its readings and what is stored;
    keys alive and destroyed; pending subject requests (without subjects); retention runs."""
    return privacy_overview(platform).as_dict()
