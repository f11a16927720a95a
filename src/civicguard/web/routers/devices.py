"""The device fleet: list, provision (the secret is returned once) and revoke."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter

from civicguard.ingest.model import Device
from civicguard.web.deps import API_PREFIX, PlatformDep
from civicguard.web.errors import ApiError, error_responses
from civicguard.web.schemas import DeviceCreate, DeviceProvisioned, DevicePublic

router = APIRouter(prefix=f"{API_PREFIX}/devices", tags=["devices"])


def device_public(device: Device) -> DevicePublic:
    """The API view of a device."""
    return DevicePublic(**dataclasses.asdict(device))


@router.get("", response_model=list[DevicePublic])
def list_devices(
    platform: PlatformDep, stream: str | None = None, district: str | None = None
) -> list[DevicePublic]:
    """Provisioned devices, optionally of one stream or district."""
    return [
        device_public(d)
        for d in platform.registry.all()
        if (stream is None or d.stream == stream) and (district is None or d.district == district)
    ]


@router.post(
    "",
    response_model=DeviceProvisioned,
    status_code=201,
    responses=error_responses(e409="A device of that id exists (device_exists)."),
)
def provision_device(body: DeviceCreate, platform: PlatformDep) -> DeviceProvisioned:
    """Register a device; the response carries its secret, which is never shown again."""
    if platform.registry.get(body.id) is not None:
        raise ApiError(409, "device_exists", f"device {body.id!r} already exists")
    if not platform.catalog.has_stream(body.stream):
        raise ApiError(422, "unknown_stream", f"stream {body.stream!r} is not in the catalog")
    device = Device(**body.model_dump())
    try:
        secret = platform.registry.provision(device, platform.clock.now())
    except ValueError as exc:
        raise ApiError(422, "invalid_device", str(exc)) from exc
    return DeviceProvisioned(**dataclasses.asdict(device), secret=secret)


@router.post(
    "/{device_id}/revoke",
    response_model=DevicePublic,
    responses=error_responses(e404="No such device (unknown_device)."),
)
def revoke_device(device_id: str, platform: PlatformDep) -> DevicePublic:
    """Revoke a device: everything it sends from now on is refused with 403."""
    if not platform.registry.revoke(device_id, platform.clock.now()):
        raise ApiError(404, "unknown_device", f"no device {device_id!r}")
    device = platform.registry.get(device_id)
    assert device is not None
    return device_public(device)
