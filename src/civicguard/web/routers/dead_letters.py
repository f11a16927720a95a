"""Dead letters: every refused message with its reason, already scrubbed of identifiers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from civicguard.ingest.model import Reason
from civicguard.web.deps import API_PREFIX, PlatformDep
from civicguard.web.schemas import DeadLetterPublic

router = APIRouter(prefix=f"{API_PREFIX}/dead-letters", tags=["dead letters"])


@router.get("", response_model=list[DeadLetterPublic])
def list_dead_letters(
    platform: PlatformDep,
    reason: Reason | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Refused messages, newest first, optionally of one reason."""
    return platform.store.dead_letters.query(reason=reason.value if reason else None, limit=limit)
